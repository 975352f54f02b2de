"""A logged-in user, kept across an upgrade. Runs inside the machine with the hub's python, once
TLJH's test requirements (hubtraf, aiohttp) are installed there.

    guest_session.py login NAME   log NAME in (TLJH's default authenticator, FirstUse: the first
                                  password sets it), start their server, write a file into
                                  their home through the server, keep the session's cookies
    guest_session.py check NAME   with the kept cookies only (no new login): the server
                                  answers and the file reads back

Prints one JSON line; exits 1 when a step fails.
"""

from __future__ import annotations

import asyncio
import json
import sys
from functools import partial

import aiohttp
from hubtraf.auth.dummy import login_dummy
from hubtraf.user import User

HUB_URL = "http://localhost"  # aiohttp keeps no cookies for an IP address
NOTE = "kept-across-the-upgrade.txt"
CONTENT = "written before the upgrade\n"


def _files(name: str) -> tuple[str, str]:
    return f"/root/session-{name}.cookies", f"/root/session-{name}.json"


async def login(name: str) -> dict[str, object]:
    jar, headers_file = _files(name)
    async with User(name, HUB_URL, partial(login_dummy, password="a-password")) as user:
        if not await user.login():
            return {"ok": False, "step": "login"}
        if not await user.ensure_server_simulate(timeout=120, spawn_refresh_time=5):
            return {"ok": False, "step": "spawn"}
        url = user.notebook_url / "api/contents" / NOTE
        async with user.session.put(url, headers=user.headers,
                                    json={"type": "file", "format": "text",
                                          "content": CONTENT}) as resp:
            if resp.status not in (200, 201):
                return {"ok": False, "step": "write", "status": resp.status}
        user.session.cookie_jar.save(jar)
        with open(headers_file, "w") as fh:
            json.dump(user.headers, fh)
    return {"ok": True}


async def check(name: str) -> dict[str, object]:
    jar_file, headers_file = _files(name)
    jar = aiohttp.CookieJar()
    jar.load(jar_file)
    with open(headers_file) as fh:
        headers = json.load(fh)
    url = f"{HUB_URL}/user/{name}/api/contents/{NOTE}"
    async with aiohttp.ClientSession(cookie_jar=jar) as session, \
            session.get(url, headers=headers, allow_redirects=False) as resp:
        if resp.status != 200:
            return {"ok": False, "step": "read", "status": resp.status,
                    "location": resp.headers.get("Location", "")}
        content = (await resp.json())["content"]
    return {"ok": content == CONTENT, "content": content}


def main() -> int:
    action, name = sys.argv[1:3]
    outcome = asyncio.run({"login": login, "check": check}[action](name))
    print(json.dumps(outcome))
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
