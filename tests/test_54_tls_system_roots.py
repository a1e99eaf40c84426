"""TLS without security.use_tls (WIRE.md sections 2 and 5): a broker on port
8883 and a manager on port 443 are spoken to over TLS, verified against the
system's CA roots. The test CA stands in for the system's roots through the
environment the daemons inherit (SSL_CERT_FILE for OpenSSL and paho,
GRPC_DEFAULT_SSL_ROOTS_FILE_PATH for libgrpc); without it the same
certificates are refused. Skipped when port 8883 or 443 is taken."""

import socket

import pytest

import nodelib


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture
def ca():
    c = nodelib.TestCA()
    yield c
    c.cleanup()


# roots given to libgrpc (the manager) and to OpenSSL/paho (the broker)
CASES = {
    "trusted": (True, True),
    "manager_unknown_ca": (False, True),
    "broker_unknown_ca": (True, False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_ports_8883_and_443(request, monkeypatch, ca, make_node, case):
    grpc_knows, openssl_knows = CASES[case]
    if not port_free(8883) or not port_free(443):
        pytest.skip("port 8883 or 443 in use")
    srv = ca.server("server")
    broker = nodelib.tls_broker(request, ca.crt, srv[0], srv[1], require_certificate=False,
                                port=8883)
    m = nodelib.tls_manager(request, srv, grpc_port=443, registration_broker_port=8883)
    other = nodelib.TestCA("other-ca")      # roots that do not know the test CA
    request.addfinalizer(other.cleanup)
    monkeypatch.setenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", ca.crt if grpc_knows else other.crt)
    monkeypatch.setenv("SSL_CERT_FILE", ca.crt if openssl_knows else other.crt)
    n = make_node(443, overrides={"security": {"use_tls": False}})
    n.start()
    if case == "trusted":
        st = n.wait_online(30)
        assert st["mqtt"]["broker"] == "127.0.0.1:8883"
        assert "as %s" % st["node_id"] in broker.log()
        assert ("TLS to the broker 127.0.0.1:8883: system CA roots, no client certificate"
                in n.log())
    elif case == "manager_unknown_ca":
        nodelib.wait_log(n, r"mantad-register: warning: manager 127\.0\.0\.1:443: IsAvailable: TLS: "
                 r"the manager's certificate is refused: (unable to get local issuer "
                 r"certificate|self-signed certificate in certificate chain)")
        rc, st = n.status()
        assert not st["manager"]["registered"]
        assert not m.calls()
    else:
        nodelib.wait_log(n, r"mantad-beat: warning: TLS to 127\.0\.0\.1:8883: the broker's "
                 r"certificate is refused: (unable to get local issuer certificate|"
                 r"self-signed certificate in certificate chain)")
        st = n.wait_status(lambda s: s["manager"]["registered"], 10, "registered")
        assert not st["mqtt"]["connected"]
