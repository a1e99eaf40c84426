/* GPUs without NVML: PCI display controllers of NVIDIA (vendor 0x10de,
 * class 0x03xxxx) from sysfs, named by the driver's
 * /proc/driver/nvidia/gpus/BUSID/information when it is loaded. Usage,
 * memory, temperature and power need NVML, which would cost this daemon
 * more than everything else together; they are reported as 0. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "res.h"

#define PCI_VENDOR_NVIDIA 0x10de

static void
copy_val(char *dst, size_t len, const char *val)
{
	size_t n;

	while (*val == ' ' || *val == '\t')
		val++;
	n = strlen(val);
	while (n > 0 && (val[n - 1] == ' ' || val[n - 1] == '\t' || val[n - 1] == '\r'))
		n--;
	if (n == 0)
		return;		/* keep what sysfs gave */
	if (n >= len)
		n = len - 1;
	memcpy(dst, val, n);
	dst[n] = '\0';
}

void
gpu_nvidia_info_parse(struct lsrc *s, struct gpu_dev *g)
{
	const char *line;

	while ((line = lsrc_next(s)) != NULL) {
		if (strncmp(line, "Model:", 6) == 0)
			copy_val(g->name, sizeof(g->name), line + 6);
		else if (strncmp(line, "GPU UUID:", 9) == 0)
			copy_val(g->uuid, sizeof(g->uuid), line + 9);
	}
}

static int
read_hex(const char *path, unsigned long *v)
{
	char buf[32], *end;

	if (read_small(path, buf, sizeof(buf)) <= 0)
		return -1;
	*v = strtoul(buf, &end, 16);
	return end == buf ? -1 : 0;
}

static int
busid_ok(const char *s)
{
	size_t n = strlen(s);

	/* "0000:01:00.0", domains may be longer; no path characters. */
	if (n < 7 || n >= sizeof(((struct gpu_dev *)0)->busid))
		return 0;
	return s[0] != '.' && strchr(s, '/') == NULL;
}

static struct gpu_dev *
gpu_find(struct gpu_list *l, const char *busid)
{
	for (unsigned i = 0; i < l->n; i++)
		if (strcmp(l->dev[i].busid, busid) == 0)
			return &l->dev[i];
	return NULL;
}

static struct gpu_dev *
gpu_add(struct gpu_list *l, const char *busid)
{
	struct gpu_dev *g;

	if (l->n >= GPU_MAX)
		return NULL;
	g = &l->dev[l->n++];
	memset(g, 0, sizeof(*g));
	snprintf(g->busid, sizeof(g->busid), "%s", busid);
	g->usage = -1;
	return g;
}

static void
gpu_name(const char *nvdir, struct gpu_dev *g)
{
	char path[512];
	struct lsrc s;

	snprintf(path, sizeof(path), "%s/%s/information", nvdir, g->busid);
	if (lsrc_open(&s, path) < 0)
		return;
	gpu_nvidia_info_parse(&s, g);
	lsrc_close(&s);
}

static int
busid_cmp(const void *a, const void *b)
{
	return strcmp(((const struct gpu_dev *)a)->busid,
	    ((const struct gpu_dev *)b)->busid);
}

void
gpu_scan(const char *pcidir, const char *nvdir, struct gpu_list *l)
{
	struct dirent *de;
	DIR *d;

	l->n = 0;
	if ((d = opendir(pcidir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			char path[512];
			unsigned long vendor, cls, device = 0;
			struct gpu_dev *g;

			if (!busid_ok(de->d_name))
				continue;
			snprintf(path, sizeof(path), "%s/%s/vendor", pcidir, de->d_name);
			if (read_hex(path, &vendor) < 0 || vendor != PCI_VENDOR_NVIDIA)
				continue;
			snprintf(path, sizeof(path), "%s/%s/class", pcidir, de->d_name);
			if (read_hex(path, &cls) < 0 || (cls >> 16) != 0x03)
				continue;
			snprintf(path, sizeof(path), "%s/%s/device", pcidir, de->d_name);
			(void)read_hex(path, &device);
			if ((g = gpu_add(l, de->d_name)) == NULL)
				break;
			snprintf(g->name, sizeof(g->name), "NVIDIA GPU [10de:%04lx]", device & 0xffff);
		}
		closedir(d);
	}
	/* The driver's list too: in a container sysfs may hide the bus. */
	if ((d = opendir(nvdir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (!busid_ok(de->d_name) || gpu_find(l, de->d_name) != NULL)
				continue;
			if (gpu_add(l, de->d_name) == NULL)
				break;
			snprintf(l->dev[l->n - 1].name, sizeof(l->dev[0].name), "NVIDIA GPU");
		}
		closedir(d);
	}
	for (unsigned i = 0; i < l->n; i++)
		gpu_name(nvdir, &l->dev[i]);
	qsort(l->dev, l->n, sizeof(l->dev[0]), busid_cmp);
}
