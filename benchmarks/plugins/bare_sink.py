"""The floor of a Python sink on pynng: a plain blocking receive loop, no SDK at all.

``python -m benchmarks --ekuiper URL`` installs this file as a third plugin next to the
two SDKs' (docs/performance.md, "Through a real eKuiper"). It speaks just enough of the
portable-plugin protocol to run one sink, ``<name>_sink``: the control channel (dial the
host's REP socket, send ``handshake``, answer each start or stop command with ``ok``)
and, per sink instance, a PULL socket read by ``sock.recv()`` in a thread of its own and
thrown away. What a Python plugin on this pynng pays per frame, and nothing more, so an
SDK's figure can be read against it.

nng's thread pools get the sizes ekuiper-sdk gives them, so that the floor differs from
the SDK in the Python work per frame only; ``EKUIPER_SDK_NNG_THREADS=0`` in the server's
environment leaves nng's own sizes to both.
"""

import json
import os
import sys
import threading

import pynng

NAME = os.path.splitext(os.path.basename(__file__))[0]

if os.environ.get("EKUIPER_SDK_NNG_THREADS", "").strip() != "0":
    for pool, count in (("TASK", 2), ("EXPIRE", 1), ("POLLER", 1), ("RESOLVER", 1)):
        for kind in ("NUM", "MAX"):
            param = getattr(pynng.lib, f"NNG_INIT_{kind}_{pool}_THREADS", None)
            if param is not None:
                pynng.lib.nng_init_set_parameter(param, count)


def drain(sock):
    """Receive and drop frames until the socket is closed."""
    try:
        while True:
            sock.recv()
    except pynng.Closed:
        pass


def main():
    sockets = {}
    ctrl = pynng.Req0(resend_time=0)
    ctrl.dial(f"ipc:///tmp/plugin_{NAME}.ipc", block=True)
    ctrl.send(b"handshake")
    while True:
        command = json.loads(ctrl.recv())
        arg = json.loads(command["arg"])
        meta = arg.get("meta", {})
        key = f"{meta.get('ruleId')}_{meta.get('opId')}_{meta.get('instanceId', 0)}"
        if command["cmd"] == "start" and arg.get("pluginType") == "sink":
            path = f"/tmp/{key}.ipc"
            if os.path.exists(path):
                os.unlink(path)
            sock = pynng.Pull0(recv_max_size=0)
            sock.listen(f"ipc://{path}")
            sockets[key] = sock
            threading.Thread(target=drain, args=(sock,), daemon=True).start()
        elif command["cmd"] == "stop" and key in sockets:
            sockets.pop(key).close()
        ctrl.send(b"ok")


if __name__ == "__main__":
    sys.exit(main())
