"""The network lab and the impairment proxy, measured for real across namespaces."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from bench.netlab import NetLab, netlab_available

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(netlab_available() is not None, reason=str(netlab_available())),
]

ECHO = textwrap.dedent(
    """
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", int(sys.argv[1])))
    print("ready", flush=True)
    while True:
        data, addr = s.recvfrom(65535)
        s.sendto(data, addr)
    """
)

PROBE = textwrap.dedent(
    """
    import json, socket, sys, time
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.25)
    addr = (socket.gethostbyname(host), port)
    rtts, lost = [], 0
    for i in range(n):
        t0 = time.monotonic()
        s.sendto(str(i).encode(), addr)
        try:
            while s.recvfrom(65535)[0] != str(i).encode():
                pass
            rtts.append(time.monotonic() - t0)
        except socket.timeout:
            lost += 1
    print(json.dumps({"rtts": rtts, "lost": lost, "resolved": addr[0]}))
    """
)


def _wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip().startswith(("ready", "impair:")), line


def test_impairment_proxy_between_two_regions_adds_the_configured_delay_and_loss() -> None:
    with NetLab(["origin", "eu"], [("origin", "eu")]) as lab:
        origin_ip = lab.address("origin", "eu")
        eu_ip = lab.address("eu", "origin")
        # "the origin" resolves to the proxy inside eu, to itself inside origin.
        lab.set_hosts({"eu": {"origin.lab": eu_ip}, "origin": {"origin.lab": origin_ip}})
        echo = lab.popen(
            "origin", [sys.executable, "-c", ECHO, "7000"], stdout=subprocess.PIPE, text=True
        )
        proxy = lab.popen(
            "eu",
            [
                sys.executable,
                "-m",
                "bench.impair",
                "--listen",
                f"{eu_ip}:7000",
                "--upstream",
                f"{origin_ip}:7000",
                "--delay-ms",
                "20",
                "--loss",
                "0.1",
                "--seed",
                "7",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_ready(echo)
            _wait_ready(proxy)
            direct = json.loads(
                lab.run(
                    "origin",
                    [sys.executable, "-c", PROBE, "origin.lab", "7000", "20"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            through = json.loads(
                lab.run(
                    "eu",
                    [sys.executable, "-c", PROBE, "origin.lab", "7000", "100"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
        finally:
            for p in (echo, proxy):
                p.terminate()
                p.wait(timeout=5)
    assert direct["resolved"] == origin_ip and through["resolved"] == eu_ip
    assert direct["lost"] == 0 and max(direct["rtts"]) < 0.015
    rtts = sorted(through["rtts"])
    median = rtts[len(rtts) // 2]
    assert 0.039 <= median <= 0.060, f"median RTT {median * 1000:.1f} ms, expected ~40 ms"
    # 10% loss each way -> ~19% of round trips lost; allow wide statistical room.
    assert 6 <= through["lost"] <= 40, through["lost"]


def test_tbf_rate_limit_bounds_throughput_on_a_link() -> None:
    # Measured at the receiver: the sender's socket buffer would hide the limit.
    sink = (
        "import socket,time;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
        "s.bind(('0.0.0.0',7001));s.listen();print('ready',flush=True);c,_=s.accept();n=0;t=None\n"
        "while (d:=c.recv(65536)):\n t=t or time.monotonic();n+=len(d)\n"
        "print(n/(time.monotonic()-t)*8/1e6,flush=True)"
    )
    send = (
        "import socket,sys,time;c=socket.create_connection((sys.argv[1],7001));b=b'x'*65536\n"
        "t=time.monotonic()\nwhile time.monotonic()-t<2:\n c.sendall(b)\nc.close()"
    )
    with NetLab(["pop", "viewer"], [("pop", "viewer")]) as lab:
        lab.rate_limit("pop", "viewer", 4)
        receiver = lab.popen(
            "viewer", [sys.executable, "-c", sink], stdout=subprocess.PIPE, text=True
        )
        try:
            _wait_ready(receiver)
            start = time.monotonic()
            lab.run("pop", [sys.executable, "-c", send, lab.address("viewer", "pop")], check=True)
            assert receiver.stdout is not None
            out = receiver.stdout.readline()
            assert time.monotonic() - start < 30
            stats = lab.qdisc_stats("pop", "viewer")
        finally:
            receiver.terminate()
            receiver.wait(timeout=5)
    mbit = float(out)
    assert 3.0 <= mbit <= 4.8, f"{mbit:.2f} Mbit/s through a 4 Mbit/s tbf"
    assert "tbf" in stats
