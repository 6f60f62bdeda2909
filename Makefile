# Shortcuts; the scripts are the source of truth (they work without make).
.PHONY: run test lint bench build generate

build:
	go build -o bin/hoard ./cmd/hoard

run:
	./scripts/run.sh

test:
	./scripts/test.sh

lint:
	./scripts/lint.sh

bench:
	go run ./bench -scenario all

generate:
	go run ./internal/ecapi/gen
