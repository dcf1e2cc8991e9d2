"""Accounts and sessions (等保 2.0): login lockout, passwords, session limits, disabled accounts,
the Content-Security-Policy, and the production settings passing ``check --deploy``."""

import datetime
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import SESSION_KEY, authenticate
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from schools.models import AuditEvent, User
from tests import factories

BASE_DIR = Path(__file__).resolve().parent.parent
NOW = datetime.datetime(2026, 6, 16, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
LOCKED = "已被锁定"


def attempt(client: Client, password: str, username: str = "teacher"):
    return client.post(reverse("login"), {"username": username, "password": password})


def signed_in(client: Client) -> bool:
    return SESSION_KEY in client.session


def lock_out(client: Client, username: str = "teacher") -> None:
    for _ in range(settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS):
        attempt(client, "wrong-password", username)


def sessions_of(user: User) -> list[str]:
    return [
        session.session_key
        for session in Session.objects.all()
        if session.get_decoded().get(SESSION_KEY) == str(user.pk)
    ]


# --- login failures ----------------------------------------------------------------------------


def test_five_failures_lock_the_account_from_that_address_even_for_the_right_password(world, client):
    for _ in range(settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS - 1):
        response = attempt(client, "wrong-password")
        assert response.status_code == 200 and "用户名或密码不正确" in response.content.decode()

    fifth = attempt(client, "wrong-password")
    assert fifth.status_code == 429 and LOCKED in fifth.content.decode()

    sixth = attempt(client, factories.PASSWORD)
    page = sixth.content.decode()
    assert sixth.status_code == 429
    assert "该账号在您当前的网络地址已被锁定 30 分钟" in page and "教育局管理员" in page
    assert not signed_in(client)


def test_a_locked_account_still_signs_in_from_another_address_and_others_from_the_same_one(world, client):
    lock_out(client)

    elsewhere = Client(REMOTE_ADDR="10.20.30.40")
    response = attempt(elsewhere, factories.PASSWORD)
    assert response.status_code == 302 and signed_in(elsewhere)

    colleague = Client()  # same address 127.0.0.1, another account (a school's shared NAT)
    response = attempt(colleague, factories.PASSWORD, username="head")
    assert response.status_code == 302 and signed_in(colleague)


def test_the_lock_ends_thirty_minutes_after_it_began_and_attempts_meanwhile_do_not_extend_it(world, client):
    with time_machine.travel(NOW, tick=False) as traveller:
        lock_out(client)
        traveller.shift(datetime.timedelta(minutes=29))
        assert attempt(client, factories.PASSWORD).status_code == 429

        traveller.shift(datetime.timedelta(minutes=1, seconds=1))
        response = attempt(client, factories.PASSWORD)
        assert response.status_code == 302 and signed_in(client)


def test_the_lockout_page_says_until_when(world, client):
    with time_machine.travel(NOW, tick=False):
        lock_out(client)
        page = attempt(client, factories.PASSWORD).content.decode()
    assert "（至 09:30）" in page


def test_a_successful_login_clears_the_count_of_failures(world, client):
    for _ in range(settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS - 1):
        attempt(client, "wrong-password")
    assert attempt(client, factories.PASSWORD).status_code == 302

    other = Client()
    for _ in range(settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS - 1):
        attempt(other, "wrong-password")
    assert attempt(other, factories.PASSWORD).status_code == 302


def test_the_lockout_is_written_to_the_audit_log(world, client):
    lock_out(client)

    event = AuditEvent.objects.get(action=AuditEvent.Action.LOGIN_FAILED, detail__lockout=True)
    assert event.username == "teacher" and event.ip == "127.0.0.1"
    assert event.detail == {"lockout": True, "rule": "address", "failure_limit": 5, "locked_minutes": 30}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_FAILED, detail={}).count() == 5


def test_the_bureau_admin_unlocks_an_account_in_the_admin(world, client, login):
    lock_out(client)
    locked = AccessAttempt.objects.get(username="teacher", ip_address="127.0.0.1")
    admin = login(world.bureau_admin)
    assert admin.get(reverse("admin:axes_accessattempt_changelist")).status_code == 200

    response = admin.post(reverse("admin:axes_accessattempt_delete", args=[locked.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert attempt(client, factories.PASSWORD).status_code == 302 and signed_in(client)


def test_an_account_is_unlocked_from_the_command_line(world, client):
    lock_out(client)

    call_command("axes_reset_username", "teacher", verbosity=0)

    assert attempt(client, factories.PASSWORD).status_code == 302


# --- the per-account rule: guessing from many addresses (issue 14) ------------------------------


def guess_from_many_addresses(failures: int, username: str = "teacher", first: int = 1) -> None:
    """``failures`` wrong passwords for ``username``, each from its own address (four per address
    would do too: under the per-address limit)."""
    for n in range(first, first + failures):
        attempt(Client(REMOTE_ADDR=f"198.51.100.{n}"), "wrong-password", username)


def test_twenty_failures_from_many_addresses_lock_the_account_everywhere(world):
    from visits.models import Notification

    guess_from_many_addresses(settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT - 1)
    last = attempt(Client(REMOTE_ADDR="198.51.100.99"), "wrong-password")
    assert last.status_code == 429 and "从多个网络地址登录失败次数过多" in last.content.decode()

    fresh = Client(REMOTE_ADDR="10.1.2.3")
    response = attempt(fresh, factories.PASSWORD)
    assert response.status_code == 429 and not signed_in(fresh)
    assert attempt(Client(REMOTE_ADDR="10.1.2.3"), factories.PASSWORD, username="head").status_code == 302

    told = Notification.objects.filter(title="账号因多次登录失败被锁定")
    assert sorted(n.user.username for n in told) == ["bureau_admin", "school_admin"]
    assert "张老师" in told.first().body
    event = AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_FAILED, detail__lockout=True).first()
    assert event.detail["rule"] == "account" and event.detail["failure_limit"] == 20


def test_nineteen_failures_from_many_addresses_do_not_lock_and_five_from_one_still_do(world, client):
    guess_from_many_addresses(settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT - 1)
    assert attempt(Client(REMOTE_ADDR="10.1.2.3"), factories.PASSWORD).status_code == 302

    lock_out(client)  # the per-address rule, unchanged
    assert attempt(client, factories.PASSWORD).status_code == 429
    assert attempt(Client(REMOTE_ADDR="10.1.2.4"), factories.PASSWORD).status_code == 302


def test_the_account_lock_ends_thirty_minutes_after_the_last_failure_and_old_failures_stop_counting(world):
    with time_machine.travel(NOW, tick=False) as traveller:
        guess_from_many_addresses(10)
        traveller.shift(datetime.timedelta(minutes=31))
        guess_from_many_addresses(10, first=50)  # the first ten no longer count
        assert attempt(Client(REMOTE_ADDR="10.1.2.3"), "wrong-password").status_code == 200

        guess_from_many_addresses(9, first=100)  # 10 + 1 + 9 = 20 in the last half hour
        assert attempt(Client(REMOTE_ADDR="10.1.2.3"), factories.PASSWORD).status_code == 429
        traveller.shift(datetime.timedelta(minutes=30, seconds=1))
        assert attempt(Client(REMOTE_ADDR="10.1.2.3"), factories.PASSWORD).status_code == 302


def test_refused_attempts_during_the_lock_notify_no_one_again(world):
    from visits.models import Notification

    guess_from_many_addresses(settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT)
    count = Notification.objects.count()
    for n in range(3):
        assert attempt(Client(REMOTE_ADDR=f"10.9.9.{n}"), "wrong-password").status_code == 429
    assert Notification.objects.count() == count == 2


def test_the_bureau_admin_sees_locked_accounts_and_unlocks_one_with_one_action(world, login, client):
    guess_from_many_addresses(settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT)
    lock_out(client, username="head")
    admin = login(world.bureau_admin)
    page = admin.get(reverse("locked_accounts"))
    html = page.content.decode()
    rows = {a["username"]: a for a in page.context["accounts"]}
    assert rows["teacher"]["rule"] == "account" and rows["teacher"]["failures"] == 20
    assert rows["teacher"]["addresses"] == 20 and rows["head"]["rule"] == "address"
    assert "张老师" in html and "所有地址" in html and "单个地址" in html

    response = admin.post(reverse("locked_account_unlock"), {"username": "teacher"})
    assert response.status_code == 302
    assert attempt(Client(REMOTE_ADDR="10.1.2.3"), factories.PASSWORD).status_code == 302
    event = AuditEvent.objects.get(action=AuditEvent.Action.CHANGE, object_type="axes.AccessAttempt")
    assert event.user == world.bureau_admin and event.object_id == "teacher" and event.detail["removed"] == 20
    assert [a["username"] for a in admin.get(reverse("locked_accounts")).context["accounts"]] == ["head"]


@pytest.mark.parametrize("role", ["teacher", "school_admin", "zone_admin", "inspector", "other_admin"])
def test_only_the_bureau_admin_reaches_the_locked_accounts(world, login, role):
    guess_from_many_addresses(settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT, username="other_teacher")
    client = login(world.users()[role])
    assert client.get(reverse("locked_accounts")).status_code == 404
    assert client.post(reverse("locked_account_unlock"), {"username": "other_teacher"}).status_code == 404
    assert attempt(Client(REMOTE_ADDR="10.1.2.3"), factories.PASSWORD, username="other_teacher").status_code == 429


# --- passwords ---------------------------------------------------------------------------------


@pytest.mark.parametrize("password", ["Ab3$efgh", "1357924680135", "password123", "qwertyuiop"])
def test_short_all_digit_and_common_passwords_are_refused(world, password):
    with pytest.raises(ValidationError):
        validate_password(password, user=world.teacher)


def test_a_long_uncommon_password_is_accepted(world):
    validate_password("家访2026-Spring-Walk", user=world.teacher)


def test_an_imported_account_signing_in_must_first_change_its_one_time_password(world, client):
    world.teacher.must_change_password = True
    world.teacher.save()

    response = attempt(client, factories.PASSWORD)
    assert response.status_code == 302
    for url in (reverse("home"), reverse("visit_list"), reverse("safety_mine")):
        response = client.get(url)
        assert response.status_code == 302 and response.url == reverse("password_change")
    assert client.get(reverse("password_change")).status_code == 200


# --- sessions ----------------------------------------------------------------------------------


def test_the_session_key_changes_at_login(world):
    client = Client()
    anonymous = client.session
    anonymous["probe"] = 1
    anonymous.save()
    before = client.cookies[settings.SESSION_COOKIE_NAME].value

    attempt(client, factories.PASSWORD)

    after = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert after != before
    assert not Session.objects.filter(session_key=before).exists()
    assert signed_in(client)


def test_a_session_idle_for_31_minutes_is_logged_out_but_not_one_idle_for_29(world, login):
    home = reverse("home")
    with time_machine.travel(NOW, tick=False) as traveller:
        client = login(world.teacher)
        traveller.shift(datetime.timedelta(minutes=29))
        assert client.get(home).status_code == 200
        traveller.shift(datetime.timedelta(minutes=29))
        assert client.get(home).status_code == 200

        traveller.shift(datetime.timedelta(minutes=31))
        response = client.get(home)
        assert response.status_code == 302 and response.url.startswith(reverse("login"))
        assert not signed_in(client)


def test_the_idle_limit_holds_whatever_the_stored_expiry_and_says_why(world, login, settings):
    settings.SESSION_COOKIE_AGE = 24 * 3600  # the middleware, not the session store, ends it here
    with time_machine.travel(NOW, tick=False) as traveller:
        client = login(world.teacher)
        traveller.shift(datetime.timedelta(minutes=31))
        response = client.get(reverse("visit_list"), follow=True)
        assert not signed_in(client)

    assert response.redirect_chain[0][0] == f"{reverse('login')}?next={reverse('visit_list')}"
    assert "您已超过 30 分钟未操作" in response.content.decode()
    logout = AuditEvent.objects.get(action=AuditEvent.Action.LOGOUT, user=world.teacher)
    assert logout.detail == {"reason": "idle"}


def test_a_session_ends_twelve_hours_after_login_however_active(world, login):
    home = reverse("home")
    with time_machine.travel(NOW, tick=False) as traveller:
        client = login(world.teacher)
        for _ in range(28):  # every 25 minutes: 11 h 40 min
            traveller.shift(datetime.timedelta(minutes=25))
            assert client.get(home).status_code == 200
        traveller.shift(datetime.timedelta(minutes=25))  # 12 h 5 min
        response = client.get(home, follow=True)
        assert not signed_in(client)

    assert response.redirect_chain[0][0].startswith(reverse("login"))
    assert "本次登录已满 12 小时" in response.content.decode()
    assert AuditEvent.objects.get(action=AuditEvent.Action.LOGOUT).detail == {"reason": "absolute"}


def test_activity_writes_the_session_at_most_once_a_minute(world, login):
    home = reverse("home")
    with time_machine.travel(NOW, tick=False) as traveller:
        client = login(world.teacher)

        def session_writes() -> int:
            with CaptureQueriesContext(connection) as captured:
                assert client.get(home).status_code == 200
            return sum(
                1
                for query in captured.captured_queries
                if "django_session" in query["sql"] and query["sql"].lstrip().upper().startswith(("UPDATE", "INSERT"))
            )

        traveller.shift(datetime.timedelta(seconds=20))
        assert session_writes() == 0
        traveller.shift(datetime.timedelta(seconds=20))
        assert session_writes() == 0
        traveller.shift(datetime.timedelta(seconds=30))
        assert session_writes() == 1


def test_a_session_without_a_login_time_is_ended(world, login):
    client = login(world.teacher)
    session = client.session
    del session["homevisit_login_at"]
    session.save()

    assert client.get(reverse("home")).status_code == 302
    assert not signed_in(client)


# --- disabled accounts -------------------------------------------------------------------------


def test_disabling_an_account_ends_all_its_sessions_at_once(world, login):
    phone, computer = login(world.teacher), login(world.teacher)
    admin = login(world.bureau_admin)
    assert len(sessions_of(world.teacher)) == 2

    world.teacher.is_active = False
    world.teacher.save()

    assert sessions_of(world.teacher) == []
    assert len(sessions_of(world.bureau_admin)) == 1
    for client in (phone, computer):
        assert client.get(reverse("home")).status_code == 302
    assert admin.get(reverse("home")).status_code in (200, 302)

    world.teacher.is_active = True  # enabled again, the old sessions stay ended
    world.teacher.save()
    assert phone.get(reverse("visit_list")).status_code == 302


def test_a_disabled_account_is_signed_out_in_the_admin_as_well(world, login):
    teacher = login(world.teacher)
    admin = login(world.bureau_admin)
    url = reverse("admin:schools_user_change", args=[world.teacher.pk])
    joined = timezone.localtime(world.teacher.date_joined)
    # The change form as the bureau admin sends it with 「有效」 unticked (unticked boxes are absent).
    data = {
        "username": world.teacher.username,
        "real_name": world.teacher.real_name,
        "phone": "",
        "email": "",
        "role": world.teacher.role,
        "school": world.teacher.school_id,
        "zone": "",
        "date_joined_0": joined.strftime("%Y-%m-%d"),
        "date_joined_1": joined.strftime("%H:%M:%S"),
    }

    response = admin.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    world.teacher.refresh_from_db()
    assert not world.teacher.is_active
    assert sessions_of(world.teacher) == []
    assert teacher.get(reverse("home")).status_code == 302


def test_an_account_disabled_by_a_bulk_update_loses_its_session_at_the_next_request(world, login):
    client = login(world.teacher)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value

    User.objects.filter(pk=world.teacher.pk).update(is_active=False)  # no post_save signal

    assert client.get(reverse("home")).status_code == 302
    assert not Session.objects.filter(session_key=key).exists()
    User.objects.filter(pk=world.teacher.pk).update(is_active=True)
    assert client.get(reverse("home")).status_code == 302


# --- Content-Security-Policy -------------------------------------------------------------------


def csp_of(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in (p.strip() for p in header.split(";")) if part}


def test_every_kind_of_page_carries_a_strict_content_security_policy(world, login, client):
    pages = [
        client.get(reverse("login")),
        login(world.teacher).get(reverse("home")),
        login(world.bureau_admin).get(reverse("statistics_county")),
        login(world.bureau_admin).get(reverse("admin:index")),
        login(world.teacher).get("/no-such-page/"),
    ]
    for response in pages:
        policy = csp_of(response)
        assert policy["default-src"] == ["'self'"]
        assert policy["script-src"] == ["'self'"]
        assert policy["style-src"] == ["'self'"]
        assert policy["img-src"] == ["'self'", "data:", "blob:"]
        assert policy["object-src"] == ["'none'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["form-action"] == ["'self'"]
        assert policy["base-uri"] == ["'self'"]
        assert "unsafe-inline" not in response["Content-Security-Policy"]
        assert "unsafe-eval" not in response["Content-Security-Policy"]
        assert response["X-Frame-Options"] == "DENY"


def test_no_template_has_an_inline_script_style_or_event_handler():
    inline_script = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
    attribute = re.compile(r"\s(style|on[a-z]+)\s*=", re.IGNORECASE)
    found = []
    for template in sorted((BASE_DIR / "templates").rglob("*.html")):
        text = template.read_text()
        for pattern in (inline_script, attribute, re.compile(r"<style\b|javascript:", re.IGNORECASE)):
            found += [f"{template.relative_to(BASE_DIR)}: {match.group(0).strip()}" for match in pattern.finditer(text)]
    assert found == []


def test_the_dashboard_sets_its_bar_widths_from_data_attributes(world, login):
    from ledgers.statistics import statistics_compute

    factories.PhaseFactory()
    statistics_compute(campaign=factories.CampaignFactory())
    page = login(world.bureau_admin).get(reverse("statistics_county")).content.decode()
    assert 'data-width="' in page and 'data-left="' in page and "js/widths" in page


# --- production settings -----------------------------------------------------------------------

PRODUCTION_ENV = {
    "DATABASE_URL": "postgres://homevisit@127.0.0.1:5432/homevisit",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "ALLOWED_HOSTS": "homevisit.example.gov.cn",
}


def production_env(**extra: str) -> dict[str, str]:
    """This environment without any of our settings variables, then a production deployment's."""
    ours = {"DEBUG", "SECURE_COOKIES", "BEHIND_HTTPS_PROXY", "CSRF_TRUSTED_ORIGINS", "SECRET_KEY"}
    env = {k: v for k, v in os.environ.items() if k not in ours and not k.startswith("SECURE_")}
    return {**env, **PRODUCTION_ENV, "SECRET_KEY": secrets.token_urlsafe(50), **extra}


def run_python(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_production_settings_pass_the_deployment_check_without_a_warning():
    result = run_python("manage.py", "check", "--deploy", "--fail-level", "WARNING", env=production_env())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (1 silenced)." in result.stdout


def test_production_settings_turn_on_https_hsts_and_secure_cookies():
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; print(json.dumps(["
        "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD,"
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.X_FRAME_OPTIONS, s.DEBUG]))"
    )
    env = production_env(DJANGO_SETTINGS_MODULE="homevisit.settings")

    result = run_python("-c", script, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '[true, 31536000, true, false, true, true, true, "DENY", false]'

    preload = run_python("-c", script, env={**env, "SECURE_HSTS_PRELOAD": "1", "SECURE_SSL_REDIRECT": "0"})
    assert preload.stdout.strip() == '[false, 31536000, true, true, true, true, true, "DENY", false]'


def test_the_deployment_check_passes_in_process_with_production_values(settings):
    settings.DEBUG = False
    settings.SECRET_KEY = secrets.token_urlsafe(50)
    settings.ALLOWED_HOSTS = ["homevisit.example.gov.cn"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 365 * 24 * 3600
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True

    call_command("check", deploy=True, fail_level="WARNING", verbosity=0)


def test_a_password_check_without_a_request_goes_on_to_the_real_backend(world):
    assert authenticate(username="teacher", password=factories.PASSWORD) == world.teacher
    assert authenticate(username="teacher", password="wrong-password") is None


def test_behind_a_trusted_proxy_the_audit_log_and_lockout_see_the_clients_address(rf, settings):
    from schools.services import client_ip

    settings.TRUSTED_PROXIES = frozenset({"10.0.0.2"})
    through_proxy = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9")
    assert client_ip(through_proxy) == "203.0.113.9"  # the proxy appended it; 1.2.3.4 the client wrote
    direct = rf.get("/", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert client_ip(direct) == "198.51.100.7"  # a client talking directly cannot choose its address
    settings.TRUSTED_PROXIES = frozenset()
    assert client_ip(through_proxy) == "10.0.0.2"
