"""The pure access rules: roles, the reads a worker credential may make, the sign-in window."""

from __future__ import annotations

import pytest

from goliat_monitor.domain.access import Need, Role, allows, may_read, retry_after, safe_next


def test_roles() -> None:
    assert all(allows(Role.ADMIN, need) for need in Need)
    assert allows(Role.VIEWER, Need.READ) and not allows(Role.VIEWER, Need.ADMIN)
    assert not allows(Role.VIEWER, Need.WORKER)
    assert allows(Role.WORKER, Need.WORKER) and not allows(Role.WORKER, Need.READ)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/api/super-studies", True),
        ("GET", "/api/super-studies/abc", True),
        ("GET", "/api/super-studies/abc/assignments", True),
        ("GET", "/api/assignments/abc", True),
        ("GET", "/api/assignments/abc/results/download", False),
        ("GET", "/api/super-studies/abc/results/list", False),
        ("GET", "/api/workers", False),
        ("GET", "/api/events", False),
        ("GET", "/", False),
        ("DELETE", "/api/super-studies/abc", False),
    ],
)
def test_a_worker_reads_only_what_goliat_worker_reads(method: str, path: str, allowed: bool) -> None:
    assert may_read(Role.WORKER, method, path) is allowed
    assert may_read(Role.VIEWER, method, path)


def test_the_limit_holds_until_the_oldest_counted_failure_leaves_the_window() -> None:
    assert retry_after([], now=100, window_s=60, limit=3) is None
    assert retry_after([90, 95], now=100, window_s=60, limit=3) is None
    assert retry_after([50, 90, 95, 99], now=100, window_s=60, limit=3) == pytest.approx(50)  # 90 + 60 - 100
    assert retry_after([30, 35, 39], now=100, window_s=60, limit=3) is None  # all outside the window
    assert retry_after([99.5, 99.6, 99.7], now=100, window_s=0.1, limit=3) is None
    assert retry_after([99.95, 99.96, 99.97], now=100, window_s=0.1, limit=3) == 1.0  # never below 1 s


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/super-studies?x=1", "/super-studies?x=1"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
        (None, "/"),
        ("/a\nb", "/"),
    ],
)
def test_only_local_paths_are_followed_after_signing_in(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected
