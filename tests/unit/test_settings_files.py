"""Every settings reader refuses an unreadable, non-JSON or non-object file the same way: the file and the field named."""
import os

import pytest
import yaml

from dockpool.errors import InvalidInput
from dockpool.firewall import load_settings
from dockpool.policy import DEFAULT_POLICY_FILE, load_policy
from dockpool_api.config import load_config
from support.paths import ROOT

READERS = [(load_policy, "policy_file"), (load_settings, "settings"), (load_config, "config")]


@pytest.mark.parametrize("reader, field", READERS)
@pytest.mark.parametrize("text, says", [("{not json", "cannot read"), ('["a list"]', "must be a JSON object")])
def test_a_bad_settings_file_names_the_file_and_field(tmp_path, reader, field, text, says):
    path = tmp_path / "settings.json"
    path.write_text(text)
    with pytest.raises(InvalidInput) as refused:
        reader(str(path))
    assert refused.value.field == field and str(path) in refused.value.message and says in refused.value.message


@pytest.mark.parametrize("reader, field", READERS[1:])  # the policy file is optional: no file, built-in defaults
def test_a_missing_settings_file_is_refused(tmp_path, reader, field):
    with pytest.raises(InvalidInput) as refused:
        reader(str(tmp_path / "absent.json"))
    assert refused.value.field == field and "No such file" in refused.value.message


def test_the_roles_write_settings_where_the_core_reads_them():
    """The settings folder is one role variable; the core's programs read provider.json there
    without being told (the watchdog, the jump-key lookup), so the two must agree."""
    core_vars = yaml.safe_load((ROOT / "roles" / "dockpool_core" / "vars" / "main.yml").read_text())
    assert core_vars["dockpool_core__config_dir"] == os.path.dirname(DEFAULT_POLICY_FILE)
