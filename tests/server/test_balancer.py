"""Two ``echostream-serve`` processes behind nginx on loopback with the repository's config
(deploy/nginx/echostream.conf), run by ``echostream-bench-balancer`` at a small size: clients
spread over both with nothing lost, and a server stopped with SIGTERM lets its streams finish
while new streams go to the other."""

import json

import pytest

from echostream_bench import balancer


@pytest.mark.skipif(balancer.find_nginx() is None, reason="nginx is not installed (tests/install_tools.sh installs it)")
def test_two_servers_behind_nginx_hold_every_client_and_drain_one(writing, corpus, tmp_path):
    save, _ = writing
    out = tmp_path / "bench"
    argv = ["--model-path", str(save / "checkpoint_last.pt"), "--data-bin", str(corpus), "--out", str(out)]
    argv += ["--clients", "6", "--seconds", "4", "--drain-clients", "2", "--held-seconds", "3"]
    assert balancer.main(argv) == 0
    results = json.loads((out / "bench_balancer.json").read_text())
    one, two = results["layouts"]["one process"]["6"], results["layouts"]["2 behind nginx"]["6"]
    for row in (one, two):  # nothing lost
        assert row["errors"] == 0 and row["held"] == 6
    assert one["per_server"] == [6, 0]
    assert min(two["per_server"]) >= 2 and sum(two["per_server"]) == 6  # least connections: both served
    drain = results["drain"]
    assert drain["on_stopped_server"] >= 1  # a held stream was on the stopped server...
    assert drain["held_finished"] == 2 and drain["new_finished"] == 2  # ...and it finished, as did the new ones
    assert drain["others_opened"] == 2 - drain["on_stopped_server"] + 2  # every new stream went to the other
    assert drain["exit_code"] == 0 and drain["exit_seconds"] < 30
    assert "| 2 behind nginx | 6 | 6 | 0 |" in (out / "bench_balancer.md").read_text()
    assert balancer.main(argv[:4] + ["--servers", "1"]) == 2
