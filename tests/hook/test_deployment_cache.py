"""token_cache=deployment without Airflow: the Variable level and the shared rate budget, against a
stand-in for Airflow Variables (one file per name, last writer wins, no lock: as racy as the real one).
The real thing, through the Task SDK on a Celery deployment, is in scale_tests/."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from airflow_provider_eshopbox.hooks.rate_control import DeploymentRateState, MemoryRateState, RateLimiter
from airflow_provider_eshopbox.hooks.token_cache import (
    CachedToken,
    DeploymentTokenStore,
    FileTokenStore,
    TokenCache,
)

KEY = "eshopbox_default:" + "ab" * 32


class FileVariables:
    """Variables as files: get/set/delete by name, atomic replace, no lock between read and write."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(exist_ok=True)

    def get(self, name: str) -> str | None:
        try:
            return (self.directory / name).read_text()
        except FileNotFoundError:
            return None

    def set(self, name: str, value: str, description: str) -> None:
        tmp = self.directory / f".{name}.{os.getpid()}.{time.monotonic_ns()}"
        tmp.write_text(value)
        os.replace(tmp, self.directory / name)

    def delete(self, name: str) -> None:
        (self.directory / name).unlink(missing_ok=True)


class Broken:
    def get(self, name: str) -> str | None:
        raise RuntimeError("no SUPERVISOR_COMMS")

    def set(self, name: str, value: str, description: str) -> None:
        raise RuntimeError("no SUPERVISOR_COMMS")

    def delete(self, name: str) -> None:
        raise RuntimeError("no SUPERVISOR_COMMS")


def _count(path: Path) -> int:
    with path.open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        n = len(fh.read()) + 1
        fh.write("x")
    return n


def _pod(root: str, n: int, start: float, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """A pod: a fresh, empty token-cache directory, the shared Variables, one exchange counter."""
    TokenCache.clear_process_cache()
    base = Path(root)
    cache = TokenCache(DeploymentTokenStore(FileTokenStore(base / f"pod-{n}"), FileVariables(base / "vars")))

    async def mint() -> CachedToken:
        count = _count(base / "exchanges")
        await asyncio.sleep(0.2)  # a real exchange takes a round trip or two
        return CachedToken.from_lifetime(f"access-token-{count}", 3600, time.time())

    time.sleep(max(0.0, start - time.time()))  # all pods start cold in the same instant
    results.put(asyncio.run(cache.aget(KEY, mint)).access_token)


def test_cold_pods_started_together_make_one_exchange_and_the_variable_holds_no_plain_token(
    tmp_path: Path,
) -> None:
    ctx = multiprocessing.get_context("fork")
    results: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    start = time.time() + 1.0
    pods = [ctx.Process(target=_pod, args=(str(tmp_path), n, start, results)) for n in range(8)]
    for pod in pods:
        pod.start()
    tokens = {results.get(timeout=60) for _ in pods}
    for pod in pods:
        pod.join(timeout=30)
    exchanges = len((tmp_path / "exchanges").read_text())
    assert exchanges == 1, f"{exchanges} exchanges for 8 cold pods"
    assert tokens == {"access-token-1"}
    (record,) = (tmp_path / "vars").iterdir()
    assert record.name == "eshopbox_access_token__eshopbox_default"  # "token": masked by key name
    text = record.read_text()
    assert "access-token" not in text and "ab" * 32 not in text  # sealed; not even the cache key


async def test_pods_without_the_deployment_level_each_exchange(tmp_path: Path) -> None:
    """The control: fresh directories and no Variable mean one exchange per pod (the test can fail)."""
    exchanges = 0

    async def mint() -> CachedToken:
        nonlocal exchanges
        exchanges += 1
        return CachedToken.from_lifetime(f"t{exchanges}", 3600, time.time())

    for n in range(3):
        TokenCache.clear_process_cache()
        await TokenCache(FileTokenStore(tmp_path / f"pod-{n}")).aget(KEY, mint)
    assert exchanges == 3


async def test_a_pod_reads_the_token_another_minted_and_a_revoked_one_is_replaced_once(
    tmp_path: Path,
) -> None:
    variables = FileVariables(tmp_path / "vars")
    minted: list[str] = []

    async def mint() -> CachedToken:
        minted.append(f"t{len(minted) + 1}")
        return CachedToken.from_lifetime(minted[-1], 3600, time.time())

    def pod(n: int) -> TokenCache:
        TokenCache.clear_process_cache()
        return TokenCache(DeploymentTokenStore(FileTokenStore(tmp_path / f"pod-{n}"), variables))

    assert (await pod(1).aget(KEY, mint)).access_token == "t1"
    assert (await pod(2).aget(KEY, mint)).access_token == "t1"
    await pod(3).ainvalidate(KEY, "t1")  # a 401: dropped for the deployment too
    assert (await pod(4).aget(KEY, mint)).access_token == "t2"
    await pod(5).ainvalidate(KEY, "t1")  # a late 401 of the old token keeps the new one
    assert (await pod(6).aget(KEY, mint)).access_token == "t2"
    # Other credentials (another cache key) cannot read the record: they mint their own.
    TokenCache.clear_process_cache()
    other = TokenCache(DeploymentTokenStore(FileTokenStore(tmp_path / "pod-7"), variables))
    assert (await other.aget("eshopbox_default:" + "cd" * 32, mint)).access_token == "t3"
    assert minted == ["t1", "t2", "t3"]


async def test_async_path_and_a_failed_exchange_releases_the_lease(tmp_path: Path) -> None:
    variables = FileVariables(tmp_path / "vars")

    async def fail() -> CachedToken:
        raise RuntimeError("token endpoint down")

    async def mint() -> CachedToken:
        return CachedToken.from_lifetime("t1", 3600, time.time())

    TokenCache.clear_process_cache()
    with pytest.raises(RuntimeError, match="down"):
        await TokenCache(DeploymentTokenStore(FileTokenStore(tmp_path / "a"), variables)).aget(KEY, fail)
    TokenCache.clear_process_cache()
    began = time.monotonic()
    token = await TokenCache(DeploymentTokenStore(FileTokenStore(tmp_path / "b"), variables)).aget(KEY, mint)
    assert token.access_token == "t1"
    assert time.monotonic() - began < 5, "waited for the lease of the failed exchange"


async def test_without_the_task_sdk_the_host_level_carries_on_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    TokenCache.clear_process_cache()
    cache = TokenCache(DeploymentTokenStore(FileTokenStore(tmp_path / "host"), Broken()))
    minted = []

    async def mint() -> CachedToken:
        minted.append(1)
        return CachedToken.from_lifetime("t1", 3600, time.time())

    with caplog.at_level(logging.WARNING):
        assert (await cache.aget(KEY, mint)).access_token == "t1"
        await cache.ainvalidate(KEY, "t1")
        assert (await cache.aget(KEY, mint)).access_token == "t1"
    assert len(minted) == 2
    warnings = [r for r in caplog.records if "deployment-wide" in r.getMessage()]
    assert len(warnings) == 1, caplog.text


# --------------------------------------------------------------------------------- rate budget
def _host(name: str, variables: FileVariables, clock: list[float]) -> DeploymentRateState:
    """A host whose syncs the test makes itself, in order (no background sync thread racing them)."""
    host = DeploymentRateState(
        "eshopbox_rate_budget__x", MemoryRateState(), name, variables, lambda: clock[0]
    )
    host._start = lambda: None  # type: ignore[method-assign]
    return host


def test_a_configured_rate_is_split_among_the_hosts_in_use(tmp_path: Path) -> None:
    variables, clock = FileVariables(tmp_path / "vars"), [1000.0]
    a, b, c = (_host(n, variables, clock) for n in "abc")
    for host in (a, b, c, a):
        host.sync()
    assert a.ceiling(30.0, clock[0]) == 10.0  # three hosts: 10/s each
    clock[0] += 6  # b and c stopped reporting
    a.sync()
    assert a.ceiling(30.0, clock[0]) == 30.0
    b.sync()
    b.sync(leaving=True)  # b goes idle and says so
    a.sync()
    assert a.ceiling(30.0, clock[0]) == 30.0 and a.ceiling(None, clock[0]) is None


def test_a_429_on_one_host_sets_the_share_of_every_host(tmp_path: Path) -> None:
    variables, clock = FileVariables(tmp_path / "vars"), [1000.0]
    a, b = _host("a", variables, clock), _host("b", variables, clock)
    limiter = RateLimiter(None, a, clock=lambda: clock[0])
    a.sync(), b.sync(), a.sync()
    for _ in range(30):  # 30 successes in the last second at this host, then a 429
        limiter.succeeded()
    limiter.throttled(1.0)
    a.sync()
    b.sync()
    assert b.learned is not None
    total = b.learned[0]
    assert 40 <= total <= 60, total  # ~2 hosts x what got through at a
    # Right after the 429 the curve stands at BETA (0.85) of it, shared by the 2 hosts.
    assert b.ceiling(None, clock[0]) == pytest.approx(0.85 * total / 2, rel=0.01)
    # A second host's 429 in the same second is the same event: the estimate is not cut twice.
    limiter_b = RateLimiter(None, b, clock=lambda: clock[0])
    clock[0] += 0.6
    limiter_b.throttled(1.0)
    b.sync()
    a.sync()
    assert a.learned is not None and a.learned[0] == total
