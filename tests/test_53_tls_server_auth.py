"""Client certificates (INTERFACE.md): without node.crt/node.key (mqtt.crt/
mqtt.key) the node speaks server-authenticated TLS only, which a manager or
broker that does not ask for client certificates accepts, and one that
requires them refuses (the node says so); a client certificate from another
CA is refused too; without ca.crt the system roots are used, which do not
know the test CA (the chain then ends at an unknown issuer or, when the
server sends it along, at an untrusted self-signed root)."""

import pytest

import nodelib


@pytest.fixture
def pki():
    ca, other = nodelib.TestCA(), nodelib.TestCA("other-ca")
    yield {"ca": ca, "other": other, "server": ca.server("server"),
           "node": ca.client("node", "node-client"), "mqtt": ca.client("mqtt", "mqtt-client"),
           "alien": other.client("alien", "alien-client")}
    ca.cleanup()
    other.cleanup()


def stack(request, pki, manager_requires, broker_requires):
    ca, srv = pki["ca"], pki["server"]
    broker = nodelib.tls_broker(request, ca.crt, srv[0], srv[1],
                                require_certificate=broker_requires)
    m = nodelib.tls_manager(request, srv, ca=ca.crt, require_client_auth=manager_requires,
                            registration_broker_port=broker.port)
    return broker, m


def tls_node(make_node, pki, port, ca=True, node=None, mqtt=None):
    n = make_node(port, overrides={"security": {"use_tls": True}})
    pki["ca"].cert_folder(n.sections["security"]["cert_folder"], ca=ca, node=node, mqtt=mqtt)
    return n


def test_server_auth_only(request, pki, make_node):
    broker, m = stack(request, pki, False, False)
    n = tls_node(make_node, pki, m.grpc_port).start()
    st = n.wait_online(30)
    assert m.wait_call("RegisterNode").extra["peer_cn"] is None
    assert "as %s" % st["node_id"] in broker.log()
    log = n.log()
    assert ("TLS to the manager: system CA roots and ca.crt, no client certificate "
            "(no node.crt and node.key)") in log
    assert "client certificate (no mqtt.crt and mqtt.key)" in log


def test_manager_requires_client_certificate(request, pki, make_node):
    broker, m = stack(request, pki, True, False)
    n = tls_node(make_node, pki, m.grpc_port, mqtt=pki["mqtt"]).start()
    nodelib.wait_log(n, r"mantad-register: warning: manager 127\.0\.0\.1:%d: IsAvailable: TLS: "
             r"the manager ended the session: it may require a client certificate "
             r"\(node\.crt\), and there is none" % m.grpc_port)
    rc, st = n.status()
    assert rc == 0 and not st["manager"]["registered"]
    assert not m.calls()


def test_broker_requires_client_certificate(request, pki, make_node):
    broker, m = stack(request, pki, True, True)
    n = tls_node(make_node, pki, m.grpc_port, node=pki["node"]).start()
    nodelib.wait_log(n, r"mantad-beat: warning: TLS to 127\.0\.0\.1:%d: the broker ended the "
             r"session: it may require a client certificate \(mqtt\.crt\), and there "
             r"is none" % broker.port)
    st = n.wait_status(lambda s: s["manager"]["registered"], 10, "registered")
    assert not st["mqtt"]["connected"]


def test_client_certificate_from_another_ca(request, pki, make_node):
    broker, m = stack(request, pki, True, True)
    n = tls_node(make_node, pki, m.grpc_port, node=pki["alien"]).start()
    nodelib.wait_log(n, r"mantad-register: warning: manager 127\.0\.0\.1:%d: IsAvailable: TLS: "
             r"the manager refused this node's certificate \(node\.crt\)" % m.grpc_port)
    assert not m.calls()

    # the broker: a node whose manager link is fine but mqtt.crt is alien
    n2 = tls_node(make_node, pki, m.grpc_port, node=pki["node"], mqtt=pki["alien"]).start()
    nodelib.wait_log(n2, r"mantad-beat: warning: TLS to 127\.0\.0\.1:%d: the broker refused "
             r"this node's certificate \(mqtt\.crt\)" % broker.port)
    st = n2.wait_status(lambda s: s["manager"]["registered"], 10, "registered")
    assert not st["mqtt"]["connected"]


def test_no_ca_file_means_system_roots(request, pki, make_node):
    broker, m = stack(request, pki, False, False)
    n = tls_node(make_node, pki, m.grpc_port, ca=False).start()
    nodelib.wait_log(n, r"TLS to the manager: system CA roots, no client certificate")
    nodelib.wait_log(n, r"mantad-register: warning: manager 127\.0\.0\.1:%d: IsAvailable: TLS: "
             r"the manager's certificate is refused: (unable to get local issuer "
             r"certificate|self-signed certificate in certificate chain)" % m.grpc_port)
    assert not m.calls()
