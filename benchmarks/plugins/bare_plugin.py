"""The ceiling: the benchmark's socket patterns in bare pynng, with no SDK around them.

It speaks just enough of the protocol to be started (handshake, ``start``/``stop``
answered ``ok``) and then does the least a plugin could do per frame: send a frame that
is already encoded, receive a frame without decoding it, answer a call with fixed bytes.
What an SDK adds on top of this is its own cost.
"""

import json
import os
import threading
import time

import pynng

PAYLOAD = "0123456789abcdef" * 4
TUPLE = json.dumps({"message": {"seq": 0, "data": PAYLOAD}, "meta": None}).encode()
REPLY = b'{"state":true,"result":"reqQEKe ,olleh"}'


def source(url, conf, stopped):
    # The send buffer lets one send return as soon as the frame is queued in nng.
    sock = pynng.Push0(send_timeout=1000, send_buffer_size=1024)
    sock.dial(url, block=True)
    count, send = int(conf.get("count", 0)), sock.send
    i = 0
    while not stopped.is_set() and (count <= 0 or i < count):
        send(TUPLE)
        i += 1
    stopped.wait()
    sock.close()


def sink(sock, ack_url, conf, stopped):
    acks = pynng.Push0(send_timeout=1000)
    acks.dial(ack_url, block=True)
    count, result = int(conf.get("count", 0)), conf.get("resultFile")
    require_ack = conf.get("requireAck") is True
    recv, n, t0 = sock.recv, 0, 0.0
    while not stopped.is_set():
        try:
            recv()
        except pynng.Timeout:
            continue
        n += 1
        if n == 1:
            t0 = time.perf_counter()
        if require_ack:
            acks.send(b"{}")
        if n == count and result:
            with open(result + ".tmp", "w") as out:
                json.dump({"count": n, "seconds": time.perf_counter() - t0}, out)
            os.replace(result + ".tmp", result)
    sock.close()
    acks.close()


def function(url):
    sock = pynng.Req0(resend_time=0, recv_timeout=5000)
    sock.dial(url, block=True)
    send, recv = sock.send, sock.recv
    send(b"handshake")
    while True:
        try:
            recv()
        except pynng.Timeout:
            send(b"handshake")
            continue
        send(REPLY)


def main():
    control = pynng.Req0(resend_time=0, recv_timeout=5000)
    control.dial(f"ipc:///tmp/plugin_{os.environ['BENCH_PLUGIN']}.ipc", block=True)
    running = {}
    answer = b"handshake"
    while True:
        control.send(answer)
        try:
            frame = control.recv()
        except pynng.Timeout:
            answer = b"handshake"
            continue
        answer = b"ok"
        cmd = json.loads(frame)
        ctrl = json.loads(cmd["arg"])
        m = ctrl["meta"]
        stem = f"{m['ruleId']}_{m['opId']}_{m['instanceId']}"
        if cmd["cmd"] == "stop":
            if stem in running:
                running.pop(stem).set()
            continue
        conf, stopped = ctrl.get("config", {}), threading.Event()
        if ctrl["pluginType"] == "source":
            running[stem] = stopped
            args = (source, f"ipc:///tmp/{stem}.ipc", conf, stopped)
        elif ctrl["pluginType"] == "sink":
            running[stem] = stopped
            sock = pynng.Pull0(recv_timeout=50)
            sock.listen(f"ipc:///tmp/{stem}.ipc")  # before "ok": the host dials right after
            args = (sink, sock, f"ipc:///tmp/{stem}_ack.ipc", conf, stopped)
        else:
            args = (function, f"ipc:///tmp/func_{ctrl['symbolName']}.ipc")
        threading.Thread(target=args[0], args=args[1:], daemon=True).start()


if __name__ == "__main__":
    main()
