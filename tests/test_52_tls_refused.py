"""Refused server certificates (issue 7): an expired one, one from another
CA, one for another address and one for another host name, served in turn
by the manager (gRPC) and by the broker (MQTT). Each is refused: the node
does not register (manager) or does not connect (broker), and its log names
the cause in one line. With security.verify_ssl = false the same expired
certificates are accepted, with a warning (the reference's verify=False)."""

import re

import pytest

import nodelib

BAD = {
    # name: (how the certificate is made, host the node uses, expected words)
    "expired": (lambda ca, other: ca.server("expired", days=-1), "127.0.0.1",
                r"certificate has expired \(subject /CN=localhost, "
                r"issuer /CN=manta-test-ca, valid until "),
    "wrong_ca": (lambda ca, other: other.server("other"), "127.0.0.1",
                 r"unable to get local issuer certificate \(subject /CN=localhost, "
                 r"issuer /CN=other-ca, "),
    "wrong_address": (lambda ca, other: ca.issue("wrong", "wrong.example",
                                                 dns=("wrong.example",), ips=("127.0.0.2",)),
                      "127.0.0.1", r"IP address mismatch \(subject /CN=wrong.example, "),
    "wrong_name": (lambda ca, other: ca.issue("wrong", "wrong.example",
                                              dns=("wrong.example",), ips=("127.0.0.2",)),
                   "localhost", r"hostname mismatch \(subject /CN=wrong.example, "),
}


@pytest.fixture
def cas():
    ca, other = nodelib.TestCA(), nodelib.TestCA("other-ca")
    yield ca, other
    ca.cleanup()
    other.cleanup()


def tls_node(make_node, ca, port, host, verify=True):
    n = make_node(port, manager_host=host,
                  overrides={"security": {"use_tls": True, "verify_ssl": verify}})
    ca.cert_folder(n.sections["security"]["cert_folder"],
                   node=ca.client("node"), mqtt=ca.client("mqtt"))
    return n


@pytest.mark.parametrize("bad", sorted(BAD))
def test_manager_certificate_refused(request, cas, make_node, bad):
    ca, other = cas
    make, host, words = BAD[bad]
    crt, key = make(ca, other)
    m = nodelib.tls_manager(request, (crt, key), ca=ca.crt,
                            registration_broker_port=nodelib.free_port())
    n = tls_node(make_node, ca, m.grpc_port, host).start()
    nodelib.wait_log(n, r"mantad-register: warning: manager %s:%d: IsAvailable: TLS: "
             r"the manager's certificate is refused: %s"
             % (re.escape(host), m.grpc_port, words))
    rc, st = n.status()
    assert rc == 0 and st["manager"]["registered"] is False, st
    assert st["state"] == "registering"
    assert not m.calls(), m.calls()


@pytest.mark.parametrize("bad", sorted(BAD))
def test_broker_certificate_refused(request, cas, make_node, bad):
    ca, other = cas
    make, host, words = BAD[bad]
    crt, key = make(ca, other)
    srv = ca.server("server")
    broker = nodelib.tls_broker(request, ca.crt, crt, key)
    m = nodelib.tls_manager(request, srv, ca=ca.crt, registration_broker_host=host,
                            registration_broker_port=broker.port)
    n = tls_node(make_node, ca, m.grpc_port, "127.0.0.1").start()
    nodelib.wait_log(n, r"mantad-beat: warning: TLS to %s:%d: the broker's certificate "
             r"is refused: %s" % (re.escape(host), broker.port, words))
    st = n.wait_status(lambda s: s["manager"]["registered"], 10, "registered")
    assert st["mqtt"]["connected"] is False, st
    assert st["state"] == "offline"
    rc, st = n.status()
    node_id = st["node_id"]
    assert st["mqtt"]["connected"] is False
    assert "as %s" % node_id not in broker.log()


def test_verify_ssl_false_accepts(request, cas, make_node):
    ca, other = cas
    crt, key = ca.server("expired", days=-1)
    broker = nodelib.tls_broker(request, ca.crt, crt, key)
    m = nodelib.tls_manager(request, (crt, key), ca=ca.crt,
                            registration_broker_port=broker.port)
    n = tls_node(make_node, ca, m.grpc_port, "127.0.0.1", verify=False).start()
    st = n.wait_status(lambda s: s["mqtt"]["connected"], 30, "connected to the broker")
    assert st["manager"]["registered"]
    assert ("mantad-register: warning: security.verify_ssl = false: the manager's "
            "certificate is not checked") in n.log()
    assert ("mantad-beat: warning: security.verify_ssl = false: the broker's "
            "certificate is not checked") in n.log()
    assert "as %s" % st["node_id"] in broker.log()
