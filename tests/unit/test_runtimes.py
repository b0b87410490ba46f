"""Which runtime an instance gets, and what gVisor's runsc needs on this kernel: pure decisions."""
from __future__ import annotations

import pytest

from dockpool.errors import InvalidInput
from dockpool.gvisor import HOST_NETWORK, host_pids_limit, network_arguments, release_date
from dockpool.policy import policy_from_settings


def test_the_provider_runtime_with_per_image_overrides_by_short_or_full_name():
    policy = policy_from_settings({"runtime": "runsc", "image_runtimes": {"desktop": "runc"}})
    assert policy.runtime_for("debian-sshd") == "runsc"
    assert policy.runtime_for("desktop") == "runc"
    assert policy.runtime_for("dockpool/desktop:latest") == "runc"
    assert policy_from_settings({}).runtime_for("desktop") == "runc"


@pytest.mark.parametrize("settings, field", [
    ({"runtime": "kata"}, "runtime"),
    ({"image_runtimes": ["desktop"]}, "image_runtimes"),
    ({"image_runtimes": {"desktop": "crun"}}, "image_runtimes[desktop]"),
])
def test_a_runtime_setting_outside_runc_and_runsc_names_its_field(settings, field):
    with pytest.raises(InvalidInput) as refused:
        policy_from_settings(settings)
    assert refused.value.field == field


def test_release_dates_read_from_debian_and_upstream_version_lines():
    assert release_date("runsc version 0.0~20221219.0\nspec: 1.0.2-dev") == 20221219
    assert release_date("runsc version release-20240807.0") == 20240807
    assert release_date("") is None


@pytest.mark.parametrize("release, namespaced, wanted", [
    (20221219, True, [HOST_NETWORK]),   # Debian 12's runsc on Linux 6.8+: it would refuse every instance
    (20221219, False, []),              # the same runsc on Debian 12's own kernel keeps its netstack
    (20240807, True, []),               # fixed upstream on 2024-07-31
    (None, True, [HOST_NETWORK]),       # unknown version: assume the old check
])
def test_host_networking_only_where_runsc_would_misjudge_the_namespace(release, namespaced, wanted):
    assert network_arguments(release, namespaced) == wanted


def test_the_pids_limit_makes_room_for_gvisors_threads_only_under_gvisor():
    assert host_pids_limit(512, "runc") == 512
    assert host_pids_limit(77, "runsc") == 77 * 9 + 128
