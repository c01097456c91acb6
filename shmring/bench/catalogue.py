"""Every transport the benchmark knows, in the order the tables show them."""
from __future__ import annotations

from .transport import Transport
from .transports.copy import CopyTransport
from .transports.dbus import DbusTransport
from .transports.faster_fifo import FasterFifoTransport
from .transports.iceoryx2 import Iceoryx2Transport
from .transports.mp import MpPipeTransport, MpQueueTransport
from .transports.posix_mq import PosixMqTransport
from .transports.ring import RingTransport
from .transports.stream import PipeTransport, SocketPairTransport, TcpTransport
from .transports.zmq import ZmqTransport

SLEEP_GAP_US = 50.0  # the sleeping round trip's pause before each ping (see README)


def transports() -> list[Transport]:
    no_rtt = ("msg64", "batch64", "frame64k", "frame1m")
    return [
        RingTransport("spsc", workloads=no_rtt + ("pingpong64",)),
        # spin_ns 0 and a pause before each ping: each hop pays a futex wake-up
        RingTransport("spsc", regime="sleeping", spin_ns=0, gap_us=SLEEP_GAP_US, in_quick=False,
                      workloads=("pingpong64",)),
        RingTransport("mpmc", workloads=no_rtt + ("many64",)),
        RingTransport("locked", workloads=no_rtt + ("pingpong64", "many64")),
        CopyTransport(),
        PipeTransport(),
        PipeTransport(gap_us=SLEEP_GAP_US),
        SocketPairTransport(),
        TcpTransport(),
        MpPipeTransport(),
        MpQueueTransport(),
        PosixMqTransport(),
        FasterFifoTransport(),
        FasterFifoTransport(batched=True),
        ZmqTransport(),
        Iceoryx2Transport(),
        DbusTransport(),
    ]
