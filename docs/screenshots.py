"""Take the README's screenshots from the demo, and measure what a phone downloads.

    make screenshots                                  # seeds the demo if needed, serves it, shoots
    .venv/bin/python docs/screenshots.py URL          # against a demo already running at URL

Phone-sized (390×844) for teachers' pages, desktop-sized (1366×768) for the school's and the
bureau's. Each page is also opened once more in a fresh browser context (empty cache) to measure
its first-load weight as transferred (compressed: WhiteNoise's precompressed static files and
GZipMiddleware for pages) and to count the targets under 44 px; the figures are written to
``docs/page-weights.md``. Needs Debian's Chromium (/usr/bin/chromium) and the demo accounts of
``seed_demo``.
"""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "screenshots"
PASSWORD = "demo12345"  # noqa: S105 - the demo accounts of seed_demo, printed on the console
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1366, "height": 768}}
sys.path.insert(0, str(ROOT))
from tests.browser import _SMALL_TARGETS_JS, TARGET_MIN_PX  # noqa: E402


def login(context, base: str, username: str):
    page = context.new_page()
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state()
    return page


class Measure:
    """First-load weight (bytes on the wire, headers and compressed bodies) and small targets."""

    def __init__(self, browser, base: str) -> None:
        self.browser, self.base, self.rows = browser, base, []

    def page(self, page, label: str, kind: dict) -> None:
        context = self.browser.new_context(storage_state=page.context.storage_state(), **kind)
        probe = context.new_page()
        sizes: list[int] = []
        probe.on("requestfinished", lambda request: sizes.append(_transfer(request)))
        probe.goto(page.url)
        probe.wait_for_load_state("networkidle")
        small = probe.evaluate(_SMALL_TARGETS_JS, TARGET_MIN_PX)
        self.rows.append((label, page.url.removeprefix(self.base), sum(sizes), len(sizes), len(small)))
        context.close()

    def write(self, path: Path) -> None:
        lines = [
            "# Page weight and touch targets (measured on the demo)",
            "",
            "First load with an empty cache, as transferred (compressed), all assets; targets under 44 px",
            "counted as in `tests/browser.py`. Written by `make screenshots`.",
            "",
            "| page | path | first load | requests | targets < 44 px |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        for label, url, size, count, small in self.rows:
            lines.append(f"| {label} | `{url}` | {size / 1024:.0f} KB | {count} | {small} |")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _transfer(request) -> int:
    sizes = request.sizes()
    return sizes["responseBodySize"] + sizes["responseHeadersSize"]


def shoot(base: str) -> None:
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-background-networking"]
        )
        measure = Measure(browser, base)
        phone = browser.new_context(**PHONE)
        page = login(phone, base, "teacher")
        page.screenshot(path=OUT / "teacher-my-students.png")
        measure.page(page, "我的学生", PHONE)
        page.locator("[data-status=needs_revisit]").first.click()
        page.wait_for_load_state()
        page.screenshot(path=OUT / "teacher-student.png")
        measure.page(page, "学生", PHONE)
        page.get_by_role("link", name="新建家访").click()
        page.wait_for_load_state()
        page.screenshot(path=OUT / "teacher-visit-form.png")
        measure.page(page, "家访记录表", PHONE)
        page.goto(f"{base}/safety/new/")
        measure.page(page, "家访报备", PHONE)
        page.goto(f"{base}/safety/mine/")
        measure.page(page, "我的报备", PHONE)
        page.goto(f"{base}/visits/")
        measure.page(page, "我的家访", PHONE)
        phone.close()

        head = browser.new_context(**PHONE)
        page = login(head, base, "head")
        measure.page(page, "班主任首页", PHONE)
        head.close()

        desk = browser.new_context(**DESKTOP)
        page = login(desk, base, "school")
        page.goto(f"{base}/safety/board/")
        page.screenshot(path=OUT / "school-safety-board.png")
        page.goto(f"{base}/visits/")
        page.screenshot(path=OUT / "school-visit-list.png")
        page.goto(f"{base}/")
        school_id = page.url.rstrip("/").rsplit("/", 1)[-1]
        page.goto(f"{base}/schools/{school_id}/support/")
        page.screenshot(path=OUT / "school-support-ledger.png", full_page=True)
        measure.page(page, "帮扶台账", DESKTOP)
        page.goto(f"{base}/schools/{school_id}/care/")
        page.screenshot(path=OUT / "school-care-ledger.png", full_page=True)
        measure.page(page, "关爱台账", DESKTOP)
        page.goto(f"{base}/ledgers/feedback/")
        page.screenshot(path=OUT / "school-feedback-ledger.png", full_page=True)
        measure.page(page, "问题反馈台账", DESKTOP)
        page.get_by_role("link", name="统计看板").first.click()
        page.wait_for_timeout(1500)  # the charts animate in
        page.screenshot(path=OUT / "school-dashboard.png", full_page=True)
        measure.page(page, "学校统计看板", DESKTOP)
        desk.close()

        bureau = browser.new_context(**DESKTOP)
        page = login(bureau, base, "bureau")
        page.goto(f"{base}/statistics/")
        page.wait_for_timeout(1500)
        page.screenshot(path=OUT / "bureau-dashboard.png", full_page=True)
        measure.page(page, "全县统计看板", DESKTOP)
        bureau.close()

        phone = browser.new_context(**PHONE)
        page = login(phone, base, "bureau")
        page.goto(f"{base}/statistics/")
        page.wait_for_timeout(1500)
        page.screenshot(path=OUT / "bureau-dashboard-phone.png", full_page=True)
        measure.page(page, "全县统计看板（手机）", PHONE)
        phone.close()
        browser.close()
    measure.write(ROOT / "docs" / "page-weights.md")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_and_shoot() -> None:
    """Serve the demo (the embedded default, as `make run` does) on a free port and shoot it."""
    port = _free_port()
    server = subprocess.Popen(  # noqa: S603 - our own manage.py with fixed arguments
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], cwd=ROOT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(60):
            try:
                urllib.request.urlopen(f"{base}/accounts/login/", timeout=2)  # noqa: S310 - loopback
                break
            except OSError:
                time.sleep(0.5)
        shoot(base)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] != "--serve":
        shoot(sys.argv[1].rstrip("/"))
    else:
        serve_and_shoot()
