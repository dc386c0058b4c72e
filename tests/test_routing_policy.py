"""The routing rules as pure functions (no sockets, no store)."""

from __future__ import annotations

from gateway.model import AgentStatus, Priority
from gateway.routing import AgentView, WaitingView, can_take, pick_agent, pick_waiting, queue_score


def agent(id: str, held: int = 0, cap: int = 5, skills: tuple[str, ...] = ("presale",),
          status: AgentStatus = AgentStatus.ONLINE, idle: float = 0.0) -> AgentView:
    return AgentView(id, status, frozenset(skills), held, cap, idle)


def test_least_loaded_by_ratio_not_count() -> None:
    # 2/10 is less loaded than 1/2 even though it holds more
    assert pick_agent([agent("a", held=1, cap=2), agent("b", held=2, cap=10)], "presale") == "b"


def test_ties_go_to_the_longest_idle() -> None:
    agents = [agent("a", held=1, idle=200.0), agent("b", held=1, idle=100.0), agent("c", held=1, idle=300.0)]
    assert pick_agent(agents, "presale") == "b"


def test_skill_status_and_capacity_filter() -> None:
    agents = [
        agent("wrong-skill", skills=("logistics",)),
        agent("away", status=AgentStatus.AWAY),
        agent("offline", status=AgentStatus.OFFLINE),
        agent("full", held=3, cap=3),
    ]
    assert pick_agent(agents, "presale") is None
    assert pick_agent([*agents, agent("ok", held=4)], "presale") == "ok"


def test_exclude_skips_an_agent() -> None:
    assert pick_agent([agent("a"), agent("b", held=1)], "presale", exclude="a") == "b"
    assert pick_agent([agent("a")], "presale", exclude="a") is None


def test_can_take() -> None:
    assert can_take(agent("a", held=4, cap=5), "presale")
    assert not can_take(agent("a", held=5, cap=5), "presale")


def test_queue_score_priority_then_arrival() -> None:
    scores = {
        "urgent-late": queue_score(Priority.URGENT, 900),
        "high-early": queue_score(Priority.HIGH, 1),
        "normal-first": queue_score(Priority.NORMAL, 2),
        "normal-second": queue_score(Priority.NORMAL, 3),
    }
    assert sorted(scores, key=scores.__getitem__) == ["urgent-late", "high-early", "normal-first", "normal-second"]
    # exact in a double, as the Redis sorted set stores it
    assert float(queue_score(Priority.NORMAL, 10**12)) == queue_score(Priority.NORMAL, 10**12)


def test_requeued_keeps_its_ticket_ahead_of_newer_arrivals() -> None:
    requeued = queue_score(Priority.NORMAL, 5)  # arrived earlier, agent dropped
    newer = queue_score(Priority.NORMAL, 6)
    assert requeued < newer


def test_pick_waiting_first_among_the_agents_skills() -> None:
    queues = {
        "presale": [WaitingView("p1", "presale", queue_score(Priority.NORMAL, 5))],
        "aftersale": [WaitingView("s1", "aftersale", queue_score(Priority.NORMAL, 3))],
        "logistics": [WaitingView("l1", "logistics", queue_score(Priority.URGENT, 9))],
    }
    assert pick_waiting(queues, ["presale", "aftersale"]).conversation == "s1"  # type: ignore[union-attr]
    assert pick_waiting(queues, ["presale", "logistics"]).conversation == "l1"  # type: ignore[union-attr]
    assert pick_waiting(queues, ["billing"]) is None
