"""The Prometheus text exposition both servers render."""

from __future__ import annotations

from serving.exposition import MAX_SERIES, Registry, parse_text


def test_exposition_format() -> None:
    registry = Registry()
    counter = registry.counter("x_total", "Things.", ("kind",))
    counter.inc("a")
    counter.inc("a")
    counter.inc('we"ird\\')
    hist = registry.histogram("lat_seconds", "Latency.", (0.1, 1.0))
    hist.observe(0.05)
    hist.observe(0.5)
    hist.observe(5)
    registry.callback("g", "Gauge.", lambda: [((), 1.5)])
    text = registry.render().decode()
    assert "# TYPE x_total counter" in text
    assert 'x_total{kind="a"} 2' in text
    assert 'x_total{kind="we\\"ird\\\\"} 1' in text
    samples = parse_text(text)
    assert samples['lat_seconds_bucket{le="0.1"}'] == 1
    assert samples['lat_seconds_bucket{le="1"}'] == 2
    assert samples['lat_seconds_bucket{le="+Inf"}'] == 3
    assert samples["lat_seconds_count"] == 3
    assert samples["lat_seconds_sum"] == 5.55
    assert samples["g"] == 1.5
    assert text.endswith("\n")


def test_label_series_are_capped() -> None:
    registry = Registry()
    counter = registry.counter("y_total", "Y.", ("reason",))
    for i in range(MAX_SERIES + 50):
        counter.inc(f"r{i}")
    assert len(counter.values) == MAX_SERIES + 1
    assert counter.get("other") == 50


def test_labelled_histograms_exact_values_and_unlabelled_counters() -> None:
    registry = Registry()
    hist = registry.histogram("call_seconds", "Calls.", (0.01, 1.0), ("verb",))
    hist.observe(0.005, "filter")
    hist.observe(2.0, "bind")
    counter = registry.counter("plain_total", "Plain.")
    registry.callback("bytes", "Exact.", lambda: [(("memory",), "402653184"), (("cpu",), "0.7")], ("resource",))
    text = registry.render().decode()
    assert 'call_seconds_bucket{verb="filter",le="0.01"} 1' in text
    assert 'call_seconds_bucket{verb="bind",le="1"} 0' in text
    assert 'call_seconds_bucket{verb="bind",le="+Inf"} 1' in text
    assert 'call_seconds_count{verb="filter"} 1' in text
    assert hist.count("bind") == 1 and hist.count("prioritize") == 0
    assert "plain_total 0" in text, "an unlabelled counter is there before its first increment"
    counter.inc(by=2)
    assert parse_text(registry.render().decode())["plain_total"] == 2
    assert 'bytes{resource="memory"} 402653184' in text and 'bytes{resource="cpu"} 0.7' in text
