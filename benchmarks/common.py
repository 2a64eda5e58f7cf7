"""Shared helpers for the benchmarks: CPU accounting, queue depth, unique names, subprocesses, tables."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import psutil

from eventpipe.testing.ports import free_port  # noqa: E402,F401 - the one free_port

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
AMQP_URL = os.environ.get("EVENTPIPE_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2F")
PG_ADMIN_URL = os.environ.get("EVENTPIPE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def loadavg() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.2f}/{b:.2f}/{c:.2f}"


def machine() -> dict[str, str]:
    try:
        import subprocess as sp

        rmq = sp.run(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"], capture_output=True, text=True).stdout.strip()
    except OSError:
        rmq = "?"
    return {
        "cores": str(os.cpu_count()),
        "memory": f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
        "python": platform.python_version(),
        "rabbitmq": rmq or "?",
        "kernel": platform.release(),
    }


# -- CPU accounting -------------------------------------------------------------------------------
def machine_broker_pid() -> int | None:
    """beam.smp of the machine's node (runs as user rabbitmq); test nodes run as us."""
    fallback = None
    for p in psutil.process_iter(["pid", "name", "username", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if not cmd or "beam.smp" not in cmd[0]:
            continue
        if p.info["username"] == "rabbitmq":
            return p.pid
        if any("rabbit@localhost" in c for c in cmd):
            fallback = p.pid
    return fallback


def tree_cpu(pids: Iterable[int]) -> float:
    """User+system CPU seconds of these processes and all their live descendants."""
    total = 0.0
    seen: set[int] = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            if p.pid in seen:
                continue
            seen.add(p.pid)
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
    return total


class CpuMeter:
    """CPU seconds spent by a set of process trees between start() and stop().

    Children that exit in between would lose their time, so the trees are sampled every 0.5 s
    and the last sample of each pid is kept."""

    def __init__(self, pids_fn: Callable[[], Sequence[int]]) -> None:
        self.pids_fn = pids_fn
        self._last: dict[int, float] = {}
        self._first: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        for pid in self.pids_fn():
            try:
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for p in procs:
                try:
                    t = p.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                v = t.user + t.system
                self._first.setdefault(p.pid, v)
                self._last[p.pid] = v

    def start(self) -> CpuMeter:
        self._sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def stop(self) -> float:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self._sample()
        return sum(self._last[p] - self._first[p] for p in self._last)


def tree_rss_mb(pids: Iterable[int]) -> float:
    """Resident memory (MiB) summed over these processes and all their live descendants.
    Pages shared between forked children are counted once per process, as `ps` would."""
    total = 0
    seen: set[int] = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            if p.pid in seen:
                continue
            seen.add(p.pid)
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
    return total / 2**20


def percentiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(p50, p99, max) of ``values``; zeros when empty."""
    import statistics

    if not values:
        return 0.0, 0.0, 0.0
    ordered = sorted(values)
    p99 = statistics.quantiles(ordered, n=100)[98] if len(ordered) >= 2 else ordered[0]
    return statistics.median(ordered), p99, ordered[-1]




def self_cpu() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


# -- RabbitMQ helpers -------------------------------------------------------------------------------
class DepthProbe:
    """Exact ready-message count and consumer count by passive ``queue.declare`` on one kept-open
    connection (polling with a new connection each time costs the broker more than the probe)."""

    def __init__(self, url: str = AMQP_URL) -> None:
        self.url = url
        self._connect()

    def _connect(self) -> None:
        params = pika.URLParameters(self.url)
        params.heartbeat = 0  # used irregularly (idle for minutes while a publisher runs)
        params.socket_timeout = 10
        self.conn = pika.BlockingConnection(params)
        self.ch = self.conn.channel()

    def declare(self, queue: str) -> tuple[int, int] | None:
        for attempt in range(3):
            try:
                ok = self.ch.queue_declare(queue, passive=True)
                return int(ok.method.message_count), int(ok.method.consumer_count)
            except pika.exceptions.ChannelClosedByBroker:  # 404: not declared yet
                self.ch = self.conn.channel()
                return None
            except (pika.exceptions.AMQPConnectionError, pika.exceptions.ChannelWrongStateError, OSError):
                if attempt == 2:
                    raise
                time.sleep(0.5)
                self._connect()
        return None

    def depth(self, queue: str) -> int:
        r = self.declare(queue)
        return r[0] if r else 0

    def consumers(self, queue: str) -> int:
        r = self.declare(queue)
        return r[1] if r else 0

    def wait_consumers(self, queue: str, n: int, timeout: float = 90.0, procs: Sequence[subprocess.Popen[Any]] = ()) -> float:
        t0 = time.monotonic()
        while self.consumers(queue) < n:
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"worker exited with {p.returncode} before consuming {queue}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"{queue}: fewer than {n} consumers after {timeout:.0f}s")
            time.sleep(0.1)
        return time.monotonic() - t0

    def wait_empty(self, queues: Sequence[str], timeout: float, interval: float = 0.02, stable: int = 3) -> float:
        """monotonic time at which every queue first read 0 ready messages (confirmed ``stable`` times)."""
        deadline = time.monotonic() + timeout
        first_zero = None
        zeros = 0
        while time.monotonic() < deadline:
            total = sum(self.depth(q) for q in queues)
            now = time.monotonic()
            if total == 0:
                if first_zero is None:
                    first_zero = now
                zeros += 1
                if zeros >= stable:
                    return first_zero
            else:
                first_zero, zeros = None, 0
            time.sleep(interval)
        raise TimeoutError(f"queues {list(queues)} not empty after {timeout:.0f}s (depth {sum(self.depth(q) for q in queues)})")

    def delete(self, *queues: str) -> None:
        for q in queues:
            self._safely(lambda: self.ch.queue_delete(q))

    def delete_exchange(self, *names: str) -> None:
        for x in names:
            self._safely(lambda: self.ch.exchange_delete(x))

    def _safely(self, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except pika.exceptions.ChannelClosedByBroker:
            self.ch = self.conn.channel()
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.ChannelWrongStateError, OSError):
            self._connect()
            try:
                fn()
            except pika.exceptions.AMQPError:
                self.ch = self.conn.channel()

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            pass


def windowed_publish(url: str, queue: str, bodies: Iterable[bytes], *, window: int = 1000, properties: pika.BasicProperties | None = None) -> int:
    """Raw pika: publish with publisher confirms, at most ``window`` unconfirmed. Returns the count
    confirmed. One SelectConnection, the way a careful pika user would write it."""
    from pika.adapters.select_connection import SelectConnection

    it = iter(bodies)
    state = {"next": 1, "confirmed": 0, "published": 0, "outstanding": set(), "done": False, "error": None}
    props = properties or pika.BasicProperties(delivery_mode=2, content_type="application/json")
    holder: dict[str, Any] = {}

    def pump() -> None:
        ch = holder["ch"]
        out = state["outstanding"]
        while len(out) < window and not state["done"]:
            body = next(it, None)
            if body is None:
                state["done"] = True
                break
            ch.basic_publish("", queue, body, props)
            out.add(state["next"])
            state["next"] += 1
            state["published"] += 1
        if state["done"] and not out:
            holder["conn"].close()

    def on_confirm(frame: Any) -> None:
        m = frame.method
        if not isinstance(m, pika.spec.Basic.Ack):
            state["error"] = "nack"
        out = state["outstanding"]
        tags = [t for t in out if t <= m.delivery_tag] if m.multiple else [m.delivery_tag]
        for t in tags:
            out.discard(t)
        state["confirmed"] += len(tags)
        pump()

    def on_channel(ch: Any) -> None:
        holder["ch"] = ch
        ch.confirm_delivery(ack_nack_callback=on_confirm)
        ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "classic"}, callback=lambda _f: pump())

    def on_open(conn: Any) -> None:
        conn.channel(on_open_callback=on_channel)

    def on_closed(conn: Any, reason: Any) -> None:
        conn.ioloop.stop()

    def on_error(conn: Any, exc: Any) -> None:
        state["error"] = str(exc)
        conn.ioloop.stop()

    conn = SelectConnection(pika.URLParameters(url), on_open_callback=on_open, on_open_error_callback=on_error, on_close_callback=on_closed)
    holder["conn"] = conn
    conn.ioloop.start()
    if state["error"]:
        raise RuntimeError(f"raw publish failed: {state['error']}")
    return state["confirmed"]


# -- subprocesses -------------------------------------------------------------------------------------
def bench_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPIPE_")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    f = open(log, "ab")
    try:
        return subprocess.Popen(cmd, env=env, cwd=str(ROOT), stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        f.close()


def stop(proc: subprocess.Popen[Any] | None, timeout: float = 20.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # anything left in the group
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


# -- output -----------------------------------------------------------------------------------------------
@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    title: str = ""

    def markdown(self) -> str:
        lines = []
        if self.title:
            lines.append(f"**{self.title}**\n")
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.headers))) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines)


def fmt(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "—"
    return f"{v:,.{digits}f}"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
