"""D-Bus through a private dbus-daemon that the run starts (jeepney, blocking I/O).

Each message is a method call with an `ay` body to the consumer's well-known name.  D-Bus
has no flow control for one-way messages (the daemon drops what exceeds its queue limits),
so the producer asks for a reply to every W-th call and waits for it: at most W messages
(W × size ≤ 8 MiB, W ≤ 64) are in flight, the analogue of a ring's capacity."""
from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
from typing import Any

import numpy as np

from ..transport import CALL_TIMEOUT, Receiver, Sender, Spec, Transport

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={dir}/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <limit name="max_message_size">{max_msg}</limit>
  <limit name="max_incoming_bytes">{max_q}</limit>
  <limit name="max_outgoing_bytes">{max_q}</limit>
</busconfig>
"""
IFACE, PATH = "org.shmring.Bench", "/org/shmring/Bench"


class _DbusSender(Sender):
    def __init__(self, conn: Any, dest: str, window: int) -> None:
        from jeepney import DBusAddress, MessageFlag, new_method_call  # type: ignore[import-not-found,import-untyped,unused-ignore]

        addr = DBusAddress(PATH, bus_name=dest, interface=IFACE)
        counter, no_reply = itertools.count(1), MessageFlag.no_reply_expected
        send, ask = conn.send, conn.send_and_get_reply

        def send_msg(msg: Any) -> None:
            m = new_method_call(addr, "M", "ay", (bytes(msg),))
            if next(counter) % window:
                m.header.flags |= no_reply
                send(m)
            else:
                ask(m, timeout=CALL_TIMEOUT)

        self.send = send_msg

    def send_frame(self, frame: np.ndarray) -> None:
        self.send(frame.tobytes())


class _DbusReceiver(Receiver):
    def __init__(self, conn: Any) -> None:
        from jeepney import MessageFlag, MessageType, new_method_return

        receive, send = conn.receive, conn.send
        call, no_reply = MessageType.method_call, MessageFlag.no_reply_expected

        def recv() -> Any:
            while True:
                m = receive()
                if m.header.message_type is call:
                    if not m.header.flags & no_reply:
                        send(new_method_return(m))
                    return m.body[0]

        self.recv = recv


class DbusTransport(Transport):
    name = "D-Bus (private dbus-daemon, jeepney)"
    module = "jeepney"

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir: str | None = None
        self.address = ""
        self.n = 0

    def skip_reason(self) -> str | None:
        if shutil.which("dbus-daemon") is None:
            return "dbus-daemon is not installed (Debian: apt-get install dbus)"
        return super().skip_reason()

    def start(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="shmring-bench-dbus-")
        conf = os.path.join(self.dir, "bus.conf")
        with open(conf, "w") as f:
            f.write(_CONFIG.format(dir=self.dir, max_msg=64 << 20, max_q=256 << 20))
        self.proc = subprocess.Popen(["dbus-daemon", f"--config-file={conf}", "--nofork", "--print-address=1"],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        self.address = self.proc.stdout.readline().decode().strip()
        if not self.address:
            raise OSError("dbus-daemon printed no address")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def open(self, spec: Spec) -> tuple[str, int]:
        self.n += 1
        window = max(1, min(64, (8 << 20) // spec.max_bytes))
        return f"org.shmring.bench.p{os.getpid()}.c{self.n}", window

    def _conn(self, stack: contextlib.ExitStack) -> Any:
        from jeepney.io.blocking import open_dbus_connection  # type: ignore[import-not-found,import-untyped,unused-ignore]

        conn = open_dbus_connection(bus=self.address)
        stack.callback(conn.close)
        return conn

    def sender(self, ch: tuple[str, int], stack: contextlib.ExitStack) -> Sender:
        return _DbusSender(self._conn(stack), ch[0], ch[1])

    def receiver(self, ch: tuple[str, int], stack: contextlib.ExitStack) -> Receiver:
        from jeepney.bus_messages import message_bus  # type: ignore[import-not-found,import-untyped,unused-ignore]

        conn = self._conn(stack)
        reply = conn.send_and_get_reply(message_bus.RequestName(ch[0], 4), timeout=CALL_TIMEOUT)  # 4: do not queue
        if reply.body[0] != 1:  # 1: primary owner
            raise OSError(f"could not own the bus name {ch[0]} (RequestName -> {reply.body[0]})")
        return _DbusReceiver(conn)
