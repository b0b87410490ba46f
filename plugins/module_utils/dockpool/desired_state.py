"""Bring one instance to a wanted state, idempotently, with a before/after diff.

The Ansible module is a thin wrapper around ``ensure``; check mode computes the
same outcome without changing anything.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Collection, Optional

from .errors import Conflict
from .instances import InstanceManager
from .labels import SPEC_LABELS, spec_labels
from .spec import InstanceSpec
from .validation import key_fingerprint, validate_name

STATES = ("present", "started", "stopped", "absent")
_UP = ("running", "restarting")


@dataclass
class Outcome:
    changed: bool
    instance: Optional[dict[str, Any]]
    before: dict[str, Any]
    after: dict[str, Any]
    actions: list[str] = field(default_factory=list)


def _fingerprint(key: Optional[str]) -> Optional[str]:
    try:
        return key_fingerprint(key) if key else None
    except (IndexError, ValueError):
        return "(unreadable key)"


def _shown(attr: str, value: str) -> str:
    """A label value as people read it: keys by their fingerprint."""
    return (_fingerprint(value) or "") if attr == "public_key" else value


def _summary(state: str, labels: dict[str, str]) -> dict[str, Any]:
    """The small normalised state that diff mode shows."""
    summary: dict[str, Any] = {"state": state}
    summary.update({attr: _shown(attr, labels.get(label, "")) for attr, label in SPEC_LABELS.items()})
    return summary


def _wanted_state(state: str) -> str:
    return {"started": "running", "stopped": "stopped", "present": "stopped"}[state]


def ensure_absent(manager: InstanceManager, name: str, check_mode: bool) -> Outcome:
    record = manager.find(validate_name(name))
    if record is None:
        return Outcome(False, None, {}, {})
    before = _summary(manager.view(record)["state"], record.labels)
    if not check_mode:
        manager.remove(record.id)
    return Outcome(True, None, before, {}, ["removed"])


def _differences(current: dict[str, str], wanted: dict[str, str],
                 given: Optional[Collection[str]]) -> dict[str, tuple[str, str]]:
    """The spec's fields (those ``given``; all when None) whose labels differ, as shown (current, wanted)."""
    return {
        attr: (_shown(attr, current.get(label, "")), _shown(attr, wanted[label]))
        for attr, label in SPEC_LABELS.items()
        if (given is None or attr in given) and current.get(label, "") != wanted[label]
    }


def _unchangeable(name: str, differences: dict[str, tuple[str, str]]) -> Conflict:
    detail = "; ".join(f"{attr}: {old or 'unset'} -> {new or 'unset'}" for attr, (old, new) in sorted(differences.items()))
    return Conflict(
        f"instance {name!r} differs in what cannot be changed in place ({detail}); "
        "set recreate: true to remove and recreate it (everything inside the instance is lost)",
        sorted(differences)[0],
        {attr: {"current": old, "wanted": new} for attr, (old, new) in differences.items()},
    )


def ensure(
    manager: InstanceManager,
    spec: InstanceSpec,
    state: str,
    recreate: bool = False,
    check_mode: bool = False,
    wait: bool = True,
    wait_timeout: float = 30.0,
    given: Optional[Collection[str]] = None,
) -> Outcome:
    """Make the instance named ``spec.name`` exist as ``spec`` in ``state`` (present, started or stopped).

    ``given`` names the fields the caller asked for: an existing instance is compared
    in those only (all when None), so ``state: stopped`` with a name alone just stops it."""
    if state == "absent":
        return ensure_absent(manager, spec.name, check_mode)
    start = state == "started"
    wanted_labels = spec_labels(spec)
    after = _summary(_wanted_state(state), wanted_labels)
    record = manager.find(spec.name)
    if record is None:
        if manager.name_taken(spec.name):
            raise Conflict(
                f"name: a container named {spec.name!r} exists but is not managed by dockpool; choose another name",
                "name",
            )
        if check_mode:
            return Outcome(True, manager.preview(spec, start), {}, after, ["created"])
        instance = manager.create(spec, start=start, wait=wait, wait_timeout=wait_timeout)
        return Outcome(True, instance, {}, after, ["created"] + (["started"] if start else []))

    current_state = manager.view(record)["state"]
    before = _summary(current_state, record.labels)
    if state == "present":
        after["state"] = current_state
    differences = _differences(record.labels, wanted_labels, given)
    if given is not None:  # what the task left out stays as the instance has it, in the diff too
        after.update({attr: value for attr, value in before.items() if attr != "state" and attr not in given})
    if differences:
        if not recreate:
            raise _unchangeable(spec.name, differences)
        if check_mode:
            return Outcome(True, None, before, after, ["recreated"])
        manager.remove(record.id)
        instance = manager.create(spec, start=start, wait=wait, wait_timeout=wait_timeout)
        return Outcome(True, instance, before, after, ["recreated"])

    actions = []
    if start and record.status not in _UP:
        actions.append("started")
        if not check_mode:
            manager.start(record.id, wait=wait, wait_timeout=wait_timeout)
    elif state == "stopped" and record.status in _UP:
        actions.append("stopped")
        if not check_mode:
            manager.stop(record.id)
    instance = manager.get(record.id) if not check_mode else manager.view(record)
    return Outcome(bool(actions), instance, before, after, actions)
