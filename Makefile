# Entry points; each target sets up what it needs on a fresh machine.
.PHONY: setup sandbox test lint sanity api bench reliability screenshots

setup:
	scripts/setup.sh

sandbox:
	scripts/sandbox.sh

test:
	scripts/test.sh

lint: setup
	.venv/bin/yamllint --strict .
	.venv/bin/ansible-lint --profile production
	.venv/bin/ruff check .
	.venv/bin/mypy  # the core and the fleet package ([tool.mypy] in pyproject.toml)

# ansible-test sanity (validate-modules, pep8, pylint, import, compile) on the modules; `make test` runs it.
sanity: setup
	scripts/sanity.sh

api:
	scripts/api-dev.sh

bench:
	scripts/bench.sh

reliability:
	scripts/reliability.sh

# Refresh docs/desktop-novnc.png and docs/status-page.png from the tests that take them.
screenshots: setup
	DOCKPOOL_SCREENSHOT_DIR=docs .venv/bin/pytest -q tests/integration/test_desktop.py tests/integration/test_status_page.py
