#!/usr/bin/python3
"""MQTT over WebSocket with Eclipse Paho (Debian's python3-paho-mqtt 1.6.1).

Run by paho.test.mjs:

    paho_ws.py PORT PREFIX VERSION TCP_PAYLOAD

Connects to ws://127.0.0.1:PORT/mqtt (VERSION 4 = MQTT 3.1.1, 5 = MQTT 5),
subscribes to PREFIX/# at QoS 2, publishes QoS 0, 1 and 2 to itself and
checks each comes back once, byte-exact, at its QoS. Then prints
"READY PREFIX/tcp" and waits for the message the test publishes over TCP
with MQTT.js, whose payload must be TCP_PAYLOAD. Prints "OK ..." and exits 0
on success; prints "FAIL reason" and exits 1 otherwise. Every wait is
bounded.
"""
import queue
import sys
import threading
import time

import paho.mqtt
import paho.mqtt.client as mqtt

TIMEOUT = 10.0


def fail(msg):
    print(f"FAIL {msg}", flush=True)
    sys.exit(1)


def main():
    if len(sys.argv) != 5:
        fail("usage: paho_ws.py PORT PREFIX VERSION TCP_PAYLOAD")
    port, prefix, version, tcp_payload = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    proto = {4: mqtt.MQTTv311, 5: mqtt.MQTTv5}[version]
    print(f"paho-mqtt {paho.mqtt.__version__}", flush=True)

    client = mqtt.Client(client_id=f"paho-{prefix}", transport="websockets", protocol=proto)
    client.ws_set_options(path="/mqtt")

    connected = threading.Event()
    subscribed = threading.Event()
    state = {"rc": None, "granted": None, "published": set()}
    messages = queue.Queue()

    def on_connect(_c, _u, _flags, rc, _props=None):
        state["rc"] = rc
        connected.set()

    def on_subscribe(_c, _u, _mid, granted, _props=None):
        state["granted"] = granted
        subscribed.set()

    def on_publish(_c, _u, mid):
        state["published"].add(mid)

    def on_message(_c, _u, msg):
        messages.put((msg.topic, bytes(msg.payload), msg.qos, msg.retain, msg.dup))

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_publish = on_publish
    client.on_message = on_message

    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    try:
        if not connected.wait(TIMEOUT):
            fail("no CONNACK")
        if state["rc"] != 0:
            fail(f"CONNACK {state['rc']}")

        _, mid = client.subscribe(f"{prefix}/#", qos=2)
        if not subscribed.wait(TIMEOUT):
            fail("no SUBACK")
        granted = state["granted"]
        granted = [g.value if hasattr(g, "value") else g for g in granted]
        if granted != [2]:
            fail(f"SUBACK granted {granted}")

        # QoS 0/1/2 to itself: each comes back exactly once at its QoS.
        sent = {}
        for qos in (0, 1, 2):
            payload = f"paho qos {qos} ".encode() + bytes(range(256)) * 4
            info = client.publish(f"{prefix}/q{qos}", payload, qos=qos)
            sent[f"{prefix}/q{qos}"] = (payload, qos, info)
        got = {}
        deadline = time.monotonic() + TIMEOUT
        while len(got) < 3:
            left = deadline - time.monotonic()
            if left <= 0:
                fail(f"got {sorted(got)} of {sorted(sent)}")
            try:
                topic, payload, qos, retain, _dup = messages.get(timeout=left)
            except queue.Empty:
                continue
            if topic not in sent:
                fail(f"unexpected message on {topic}")
            if topic in got:
                fail(f"duplicate message on {topic}")
            want_payload, want_qos, _ = sent[topic]
            if payload != want_payload:
                fail(f"payload on {topic} differs ({len(payload)} vs {len(want_payload)} bytes)")
            if qos != want_qos:
                fail(f"{topic} delivered at QoS {qos}, expected {want_qos}")
            if retain:
                fail(f"{topic} delivered with retain set")
            got[topic] = qos
        for topic, (_, qos, info) in sent.items():
            if qos > 0:
                info.wait_for_publish(TIMEOUT)
                if not info.is_published():
                    fail(f"QoS {qos} publish on {topic} never completed (PUBACK/PUBCOMP)")
        print(f"selftest ok: {sorted(got.items())}", flush=True)

        # A message published over TCP by MQTT.js.
        print(f"READY {prefix}/tcp", flush=True)
        try:
            topic, payload, qos, _retain, _dup = messages.get(timeout=TIMEOUT)
        except queue.Empty:
            fail("no message from the TCP publisher")
        if topic != f"{prefix}/tcp":
            fail(f"unexpected message on {topic}")
        if payload != tcp_payload.encode():
            fail(f"TCP payload differs: {payload!r}")
        if qos != 1:
            fail(f"TCP message delivered at QoS {qos}, expected 1")
        time.sleep(0.2)
        if not messages.empty():
            fail(f"extra message: {messages.get_nowait()[0]}")
        print(f"OK v{version} {prefix}", flush=True)
    finally:
        client.disconnect()
        client.loop_stop()


if __name__ == "__main__":
    main()
