"""A private network for the fleet test: a named network namespace with one bridge, which the
machines join (systemd-nspawn --network-bridge) and where the controller's processes run. It
has no route and no interface to the outside: nothing the test does leaves the machine."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Optional

from tests.e2e.machine import BootedMachine, run_host

BRIDGE = "br0"


class PrivateBridge:
    """`with PrivateBridge("10.213.0") as net:` a namespace whose bridge has `SUBNET.1/24`."""

    def __init__(self, subnet: str) -> None:
        self.subnet = subnet
        self.netns = "tljh-fleet-" + uuid.uuid4().hex[:8]
        self.gateway = f"{subnet}.1"

    @property
    def prefix(self) -> list[str]:
        """The command prefix that runs a host program inside the namespace (nsenter, not
        `ip netns exec`, which remounts /sys and hides the cgroup tree nspawn needs)."""
        return ["nsenter", f"--net=/run/netns/{self.netns}"]

    @property
    def nspawn_network(self) -> tuple[str, ...]:
        return (f"--network-bridge={BRIDGE}",)

    def __enter__(self) -> PrivateBridge:
        run_host(["ip", "netns", "add", self.netns])
        try:
            for argv in (["link", "set", "lo", "up"],
                         ["link", "add", BRIDGE, "type", "bridge"],
                         ["addr", "add", f"{self.gateway}/24", "dev", BRIDGE],
                         ["link", "set", BRIDGE, "up"]):
                run_host(["ip", "-n", self.netns, *argv])
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()

    def close(self) -> None:
        # the bridge goes with the namespace; each machine's veth went when nspawn exited
        run_host(["ip", "netns", "del", self.netns], check=False)

    def address(self, index: int) -> str:
        return f"{self.subnet}.{10 + index}"

    def configure(self, machine: BootedMachine, address: str) -> None:
        """Give the machine's end of its veth (host0) an address on the bridge."""
        machine.run(["ip", "addr", "add", f"{address}/24", "dev", "host0"])
        machine.run(["ip", "link", "set", "host0", "up"])

    def run(self, argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        return run_host([*self.prefix, *argv], **kwargs)  # type: ignore[arg-type]
