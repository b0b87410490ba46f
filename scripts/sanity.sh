#!/usr/bin/env bash
# ansible-test sanity (validate-modules, pep8, pylint, import, compile) for the three modules and
# the module_utils they import, laid out as the collection `dockpool.provider` that an operator
# could build from them. ansible-test only works inside such a tree (and a git repository), so
# the files are copied to .cache/sanity with their imports pointed at the collection's path.
#   scripts/sanity.sh [extra ansible-test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
work="$PWD/.cache/sanity"
tree="$work/ansible_collections/dockpool/provider"
rm -rf "$work/ansible_collections"
mkdir -p "$tree/plugins/modules" "$tree/plugins/module_utils"
cp library/*.py "$tree/plugins/modules/"
cp -r plugins/module_utils/dockpool plugins/module_utils/dockpool_module.py "$tree/plugins/module_utils/"
find "$tree" -name __pycache__ -prune -exec rm -rf {} +
sed -i 's/ansible\.module_utils\.dockpool/ansible_collections.dockpool.provider.plugins.module_utils.dockpool/g' \
    "$tree"/plugins/modules/*.py "$tree"/plugins/module_utils/dockpool_module.py
cat >"$tree/galaxy.yml" <<YAML
namespace: dockpool
name: provider
version: 0.1.0
readme: README.md
authors: [dockpool developers (@dockpool)]
YAML
echo "The dockpool modules, laid out for ansible-test by scripts/sanity.sh." >"$tree/README.md"
git -C "$tree" init -q
git -C "$tree" add -A
git -C "$tree" -c user.name=sanity -c user.email=sanity@localhost commit -q -m sanity

# ansible-test fetches a pip bootstrap script from a host this machine cannot reach
# (environment.md): give it one that installs pip 24.2 from PyPI's wheel instead.
export HOME="$work/home"
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
[ -e "$work/pip-24.2-py3-none-any.whl" ] ||
    "$root/.venv/bin/pip" download -q --no-deps --disable-pip-version-check pip==24.2 -d "$work"
cat >"$cache/get_pip_24_2.py" <<PY
import sys
sys.path.insert(0, "$work/pip-24.2-py3-none-any.whl")
from pip._internal.cli.main import main
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--upgrade", "--force-reinstall"] + args))
PY

cd "$tree"
"$root/.venv/bin/ansible-test" sanity --local --python "$("$root/.venv/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')" \
    --test validate-modules --test pep8 --test pylint --test import --test compile "$@"
