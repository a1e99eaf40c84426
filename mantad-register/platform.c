/* platform: what this machine is, read once at start from uname(2), /proc
 * and /sys. PlatformInfo carries what Python's platform.uname() gives the
 * reference; CPU, memory, disk and GPUs are for logs and `mantactl status`
 * (the manager learns usage from the heartbeat, WIRE.md section 4). */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "log.h"
#include "register.h"

#define NVIDIA_VENDOR 0x10de
#define PCI_CLASS_DISPLAY 0x03	/* VGA 0x0300, 3D controller 0x0302 */

/* Truncating copy; truncation of these descriptive fields is harmless. */
static void
copy(char *dst, size_t len, const char *src)
{
	size_t n = strlen(src);

	if (n > len - 1)
		n = len - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* "key : value" lines; the value of the first line whose key is key. */
static int
kv_find(FILE *f, const char *key, char *out, size_t len)
{
	char line[512];

	rewind(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		char *colon = strchr(line, ':'), *k;

		if (colon == NULL)
			continue;
		*colon = '\0';
		k = trim(line);
		if (strcasecmp(k, key) == 0) {
			copy(out, len, trim(colon + 1));
			return 0;
		}
	}
	return -1;
}

static void
cpu_discover(struct platform *p)
{
	static const char *const model_keys[] = {
		"model name", "Model", "cpu model", "Hardware", "cpu",
	};
	char line[512];
	unsigned n = 0;
	FILE *f;

	if ((f = fopen("/proc/cpuinfo", "re")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (strncmp(line, "processor", 9) == 0 &&
			    (line[9] == '\t' || line[9] == ' ' || line[9] == ':'))
				n++;
		for (size_t i = 0; i < sizeof(model_keys) / sizeof(model_keys[0]); i++)
			if (kv_find(f, model_keys[i], p->cpu_model, sizeof(p->cpu_model)) == 0 &&
			    p->cpu_model[0] != '\0')
				break;
		fclose(f);
	} else
		log_warn("unable to read /proc/cpuinfo");
	if (n == 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		n = c > 0 ? (unsigned)c : 1;
	}
	p->cpu_count = n;
	if (p->cpu_model[0] == '\0')
		copy(p->cpu_model, sizeof(p->cpu_model), p->machine);
}

static void
mem_discover(struct platform *p)
{
	char v[64];
	FILE *f;

	if ((f = fopen("/proc/meminfo", "re")) == NULL) {
		log_warn("unable to read /proc/meminfo");
		return;
	}
	if (kv_find(f, "MemTotal", v, sizeof(v)) == 0)
		p->mem_total = strtoull(v, NULL, 10) * 1024;	/* "N kB" */
	fclose(f);
}

static void
disk_discover(struct platform *p, const char *dir)
{
	struct statvfs sv;

	if (statvfs(dir, &sv) == -1) {
		log_warn("unable to statvfs %s", dir);
		return;
	}
	p->disk_total = (uint64_t)sv.f_blocks * sv.f_frsize;
	p->disk_free = (uint64_t)sv.f_bavail * sv.f_frsize;
}

static struct gpu_info *
gpu_add(struct platform *p, const char *pci)
{
	struct gpu_info *g;

	for (size_t i = 0; i < p->ngpus; i++)
		if (strcasecmp(p->gpus[i].pci, pci) == 0)
			return &p->gpus[i];
	if ((g = realloc(p->gpus, (p->ngpus + 1) * sizeof(*g))) == NULL)
		return NULL;
	p->gpus = g;
	g = &p->gpus[p->ngpus++];
	memset(g, 0, sizeof(*g));
	copy(g->pci, sizeof(g->pci), pci);
	return g;
}

static int
gpu_cmp(const void *a, const void *b)
{
	return strcmp(((const struct gpu_info *)a)->pci, ((const struct gpu_info *)b)->pci);
}

/* NVIDIA GPUs: display-class PCI functions of vendor 0x10de (present with or
 * without the driver), named from the driver's /proc/driver/nvidia/gpus/
 * <pci>/information when it is loaded (Model, GPU UUID). */
static void
gpu_discover(struct platform *p)
{
	char path[512], buf[64];
	struct dirent *de;
	DIR *d;

	if ((d = opendir("/sys/bus/pci/devices")) != NULL) {
		while ((de = readdir(d)) != NULL) {
			struct gpu_info *g;
			unsigned long vendor, class, device = 0;

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", de->d_name);
			if (read_small(path, buf, sizeof(buf)) <= 0)
				continue;
			vendor = strtoul(buf, NULL, 16);
			snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/class", de->d_name);
			if (read_small(path, buf, sizeof(buf)) <= 0)
				continue;
			class = strtoul(buf, NULL, 16);
			if (vendor != NVIDIA_VENDOR || (class >> 16) != PCI_CLASS_DISPLAY)
				continue;
			snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", de->d_name);
			if (read_small(path, buf, sizeof(buf)) > 0)
				device = strtoul(buf, NULL, 16);
			if ((g = gpu_add(p, de->d_name)) != NULL && g->name[0] == '\0')
				snprintf(g->name, sizeof(g->name), "NVIDIA device %04lx", device);
		}
		closedir(d);
	}
	if ((d = opendir("/proc/driver/nvidia/gpus")) != NULL) {
		while ((de = readdir(d)) != NULL) {
			struct gpu_info *g;
			FILE *f;

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/driver/nvidia/gpus/%s/information",
			    de->d_name);
			if ((f = fopen(path, "re")) == NULL)
				continue;
			if ((g = gpu_add(p, de->d_name)) != NULL) {
				char v[128];

				if (kv_find(f, "Model", v, sizeof(v)) == 0 && v[0] != '\0')
					copy(g->name, sizeof(g->name), v);
				if (kv_find(f, "GPU UUID", v, sizeof(v)) == 0)
					copy(g->uuid, sizeof(g->uuid), v);
			}
			fclose(f);
		}
		closedir(d);
	}
	if (p->ngpus > 1)
		qsort(p->gpus, p->ngpus, sizeof(*p->gpus), gpu_cmp);
}

int
platform_discover(struct platform *p, const char *state_dir)
{
	struct utsname u;

	memset(p, 0, sizeof(*p));
	if (uname(&u) == -1) {
		log_warn("unable to uname");
		return -1;
	}
	copy(p->system, sizeof(p->system), u.sysname);
	copy(p->release, sizeof(p->release), u.release);
	copy(p->version, sizeof(p->version), u.version);
	copy(p->machine, sizeof(p->machine), u.machine);
	copy(p->hostname, sizeof(p->hostname), u.nodename);
	cpu_discover(p);
	/* Python's platform.processor() runs `uname -p`, "unknown" (hence "")
	 * on Debian; the CPU model says more and fits the field. */
	copy(p->processor, sizeof(p->processor), p->cpu_model);
	mem_discover(p);
	disk_discover(p, state_dir);
	gpu_discover(p);
	return 0;
}

void
platform_free(struct platform *p)
{
	free(p->gpus);
	p->gpus = NULL;
	p->ngpus = 0;
}

void
platform_log(const struct platform *p)
{
	log_debug("platform: %s %s %s (%s), host %s", p->system, p->release,
	    p->machine, p->version, p->hostname);
	log_debug("platform: %u CPUs (%s), %llu MiB memory, %llu MiB disk (%llu MiB free)",
	    p->cpu_count, p->cpu_model, (unsigned long long)(p->mem_total >> 20),
	    (unsigned long long)(p->disk_total >> 20),
	    (unsigned long long)(p->disk_free >> 20));
	if (p->ngpus == 0)
		log_debug("platform: no NVIDIA GPU");
	for (size_t i = 0; i < p->ngpus; i++)
		log_debug("platform: GPU %zu: %s %s %s", i, p->gpus[i].pci,
		    p->gpus[i].name, p->gpus[i].uuid[0] ? p->gpus[i].uuid : "(no driver)");
}

void
platform_to_proto(const struct platform *p, Common__Informations__PlatformInfo *pi)
{
	common__informations__platform_info__init(pi);
	/* protobuf-c's char * fields are never written through by pack. */
	pi->system = (char *)(uintptr_t)p->system;
	pi->release = (char *)(uintptr_t)p->release;
	pi->version = (char *)(uintptr_t)p->version;
	pi->machine = (char *)(uintptr_t)p->machine;
	pi->processor = (char *)(uintptr_t)p->processor;
	pi->hostname = (char *)(uintptr_t)p->hostname;
}
