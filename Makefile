# Entry points; each target sets up what it needs on a fresh machine.
.PHONY: setup sandbox test lint api bench reliability

setup:
	scripts/setup.sh

sandbox:
	scripts/sandbox.sh

test:
	scripts/test.sh

lint: setup
	.venv/bin/yamllint --strict .
	.venv/bin/ansible-lint --profile production

api:
	scripts/api-dev.sh

bench:
	scripts/bench.sh

reliability:
	scripts/reliability.sh
