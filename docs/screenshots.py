"""Take the README's screenshots from a running demo (``make run``), phone-sized for teachers'
pages and desktop-sized for the school's.

    .venv/bin/python docs/screenshots.py http://127.0.0.1:8000

Needs Debian's Chromium (/usr/bin/chromium) and the demo accounts of ``seed_demo``.
"""

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parent / "screenshots"
PASSWORD = "demo12345"  # noqa: S105 - the demo accounts of seed_demo, printed on the console


def login(context, base: str, username: str):
    page = context.new_page()
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state()
    return page


def main(base: str) -> None:
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-background-networking"]
        )
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        page = login(phone, base, "teacher")
        page.screenshot(path=OUT / "teacher-my-students.png")
        page.locator("[data-status=needs_revisit]").first.click()
        page.wait_for_load_state()
        page.screenshot(path=OUT / "teacher-student.png")
        page.get_by_role("link", name="新建家访").click()
        page.wait_for_load_state()
        page.screenshot(path=OUT / "teacher-visit-form.png")
        phone.close()

        desk = browser.new_context(viewport={"width": 1280, "height": 800})
        page = login(desk, base, "school")
        page.goto(f"{base}/safety/board/")
        page.screenshot(path=OUT / "school-safety-board.png")
        page.goto(f"{base}/visits/")
        page.screenshot(path=OUT / "school-visit-list.png")
        desk.close()

        bureau = browser.new_context(viewport={"width": 1280, "height": 800})
        page = login(bureau, base, "bureau")
        page.goto(f"{base}/statistics/")
        page.wait_for_timeout(1500)  # the charts animate in
        page.screenshot(path=OUT / "bureau-dashboard.png", full_page=True)
        bureau.close()
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "http://127.0.0.1:8000")
