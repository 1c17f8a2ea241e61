from hub.ingest.reorder import ReorderBuffer


def test_items_leave_in_time_order_after_the_window() -> None:
    buffer: ReorderBuffer[str] = ReorderBuffer(window_s=0.5)
    buffer.push(10.0, "a", t_received=10.0)
    buffer.push(9.8, "b", t_received=10.0)
    assert buffer.pop_ready(10.0) == []
    buffer.push(10.4, "c", t_received=10.4)
    assert buffer.pop_ready(10.4) == ["b"]
    assert buffer.pop_ready(11.0) == ["a", "c"]


def test_late_items_are_counted_and_refused() -> None:
    buffer: ReorderBuffer[str] = ReorderBuffer(window_s=0.0)
    buffer.push(5.0, "a", 5.0)
    assert buffer.pop_ready(5.0) == ["a"]
    assert not buffer.push(4.0, "late", 5.1)
    assert buffer.late == 1
    assert buffer.push(5.0, "same time", 5.1)


def test_receive_clock_releases_items_when_input_stops() -> None:
    buffer: ReorderBuffer[int] = ReorderBuffer(window_s=1.0)
    buffer.push(100.0, 1, t_received=200.0)
    assert buffer.pop_ready(200.5) == []
    assert buffer.pop_ready(201.0) == [1]


def test_pop_all_empties_in_order() -> None:
    buffer: ReorderBuffer[int] = ReorderBuffer(window_s=10.0)
    for t in (3.0, 1.0, 2.0):
        buffer.push(t, int(t), 0.0)
    assert buffer.pop_all() == [1, 2, 3]
    assert len(buffer) == 0
