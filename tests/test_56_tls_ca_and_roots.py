"""gRPC trust as INTERFACE.md says: with TLS the manager's certificate is
checked against the system roots plus <cert_folder>/ca.crt when present, so
a manager with a public certificate and a broker with a private CA (ca.crt)
both work in one node. The "system" roots are a test CA that libgrpc is
told about (GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, as in test_54)."""

import pytest

import nodelib


@pytest.fixture
def cas():
    public, private = nodelib.TestCA("public-ca"), nodelib.TestCA("private-ca")
    yield public, private
    public.cleanup()
    private.cleanup()


def node_with(request, monkeypatch, make_node, public, private, manager_ca):
    msrv = manager_ca.server("manager")
    bsrv = private.server("broker")
    broker = nodelib.tls_broker(request, private.crt, bsrv[0], bsrv[1],
                                require_certificate=False)
    m = nodelib.tls_manager(request, msrv, registration_broker_port=broker.port)
    monkeypatch.setenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", public.crt)
    n = make_node(m.grpc_port, overrides={"security": {"use_tls": True}})
    private.cert_folder(n.sections["security"]["cert_folder"])     # ca.crt only
    return broker, m, n.start()


def test_public_manager_private_broker(request, monkeypatch, cas, make_node):
    public, private = cas
    broker, m, n = node_with(request, monkeypatch, make_node, public, private, public)
    st = n.wait_online(30)
    assert m.wait_call("RegisterNode").extra["peer_cn"] is None    # no client pair
    assert "as %s" % st["node_id"] in broker.log()
    log = n.log()
    assert ("TLS to the manager: system CA roots and ca.crt, no client certificate "
            "(no node.crt and node.key)") in log
    assert "TLS to the broker 127.0.0.1:%d: CA from ca.crt" % broker.port in log


def test_private_manager_still_trusted(request, monkeypatch, cas, make_node):
    """A manager whose certificate comes from ca.crt's CA works as before."""
    public, private = cas
    broker, m, n = node_with(request, monkeypatch, make_node, public, private, private)
    n.wait_online(30)
    assert m.calls("RegisterNode", accepted_only=True)


def test_unknown_manager_refused(request, monkeypatch, cas, make_node):
    """Neither the roots nor ca.crt know the manager's CA: refused."""
    public, private = cas
    other = nodelib.TestCA("other-ca")
    request.addfinalizer(other.cleanup)
    broker, m, n = node_with(request, monkeypatch, make_node, public, private, other)
    nodelib.wait_log(n, r"mantad-register: warning: manager 127\.0\.0\.1:%d: IsAvailable: "
                     r"TLS: the manager's certificate is refused" % m.grpc_port)
    assert not m.calls()
