"""Redis Cluster: kill a master under load; reads and writes resume, no acknowledged write is lost."""

from __future__ import annotations

import threading
import time

import pytest

from eventpipe.kvstore import KVUnavailable, open_raw_store
from eventpipe.testing.servers import RedisClusterServers

N_KEYS = 2000
DEADLINE_S = 180


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["default", "wait1"])
def test_master_killed_under_load(fresh_redis_cluster: RedisClusterServers, mode: str) -> None:
    cluster = fresh_redis_cluster
    options = "?prefix=fo:&timeout=2" + ("&wait=1&wait_timeout=1000" if mode == "wait1" else "")
    store = open_raw_store(cluster.url + options)
    acked: dict[str, bytes] = {}
    unavailable = {"writes": 0, "reads": 0}
    unexpected: list[BaseException] = []
    done = threading.Event()
    deadline = time.monotonic() + DEADLINE_S

    def writer() -> None:
        try:
            for i in range(N_KEYS):
                key, value = f"k/{i}", f"value-{i}".encode() * 8
                while True:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"write {i} never succeeded")
                    try:
                        store.put(key, value)
                    except KVUnavailable:
                        unavailable["writes"] += 1
                        time.sleep(0.2)
                        continue
                    acked[key] = value  # acknowledged: from here on it must never be lost
                    break
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            unexpected.append(exc)
        finally:
            done.set()

    def reader() -> None:
        try:
            while not done.is_set():
                keys = list(acked)[-50:]
                if not keys:
                    time.sleep(0.01)
                    continue
                try:
                    got = store.get_many(keys)
                except KVUnavailable:
                    unavailable["reads"] += 1
                    time.sleep(0.2)
                    continue
                for key in keys:
                    assert got.get(key) == acked[key], f"acknowledged {key} read back as {got.get(key)!r}"
        except BaseException as exc:  # noqa: BLE001
            unexpected.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    while len(acked) < N_KEYS // 4 and not done.is_set():
        time.sleep(0.01)
    victim = cluster.masters()[0]
    cluster.kill(victim)
    acked_at_kill = len(acked)

    cluster.wait_failover(victim)  # the victim's replica takes over its slots
    if mode == "wait1":
        # with wait=1 the orphaned shard refuses writes until it has a replica again: give it a
        # fresh one, as an operator would (restarting the empty victim would let it claim its old
        # slots for a moment, see RedisClusterServers.restart)
        cluster.add_replica()
    for t in threads:
        t.join(timeout=DEADLINE_S)
    assert not unexpected, repr(unexpected[0])
    assert len(acked) == N_KEYS, "every write eventually succeeded after the failover"
    assert acked_at_kill < N_KEYS, "the master was killed while writes were still going on"
    assert unavailable["writes"] > 0, "writes to the dead master's slots failed as KVUnavailable"

    final: dict[str, bytes] = {}
    while time.monotonic() < deadline:
        try:
            final = store.get_many(list(acked))
            break
        except KVUnavailable:
            time.sleep(0.5)
    lost = [k for k, v in acked.items() if final.get(k) != v]
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"
    store.delete_many(list(acked))
    store.close()
