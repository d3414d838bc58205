#!/bin/sh
# Fuzzes every target in fuzz/ for SECONDS each: fuzz/run.sh SECONDS
#
# Installs what is missing first: a nightly toolchain (cargo-fuzz builds
# with -Zsanitizer=address) and cargo-fuzz itself. Exits non-zero if any
# target finds a crash; the input is then in fuzz/artifacts/TARGET/.
#
# Targets run FUZZ_JOBS at a time (default: the number of cores). Each
# libFuzzer process is single-threaded, so on two cores two targets at a
# time get the same CPU time each as one at a time, in half the wall time.
set -eu

secs=${1:?usage: fuzz/run.sh SECONDS}
# AddressSanitizer by default; FUZZ_SANITIZER=none builds in about a quarter
# of the time (CI uses it: the fuzzed code is safe Rust, where a bug is a
# panic or a failed assertion, which libFuzzer reports either way).
sanitizer=${FUZZ_SANITIZER:-address}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
cd "$(dirname "$0")"

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "installing the nightly toolchain (cargo-fuzz needs -Zsanitizer)" >&2
    if ! rustup toolchain install nightly --profile minimal; then
        echo "cannot install a nightly toolchain: cargo-fuzz needs one to build with AddressSanitizer and libFuzzer; install it with 'rustup toolchain install nightly' and rerun" >&2
        exit 2
    fi
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

cargo +nightly fuzz build -s "$sanitizer"
mkdir -p target
rm -f target/fuzz-failed

# One target: its run, its one-line result, and a mark in target/fuzz-failed
# if it crashed.
fuzz_one() {
    target=$1
    mkdir -p "corpus/$target" "seeds/$target"
    log="target/fuzz-$target.log"
    # corpus/ (ignored by git) collects what libFuzzer finds; seeds/ are
    # checked-in starting points and are only read.
    if cargo +nightly fuzz run -s "$sanitizer" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "$target: $runs executions in ${secs}s, no crash"
    else
        echo "$target: FAILED, see fuzz/$log and fuzz/artifacts/$target/" >&2
        tail -n 40 "$log" >&2
        echo "$target" >>target/fuzz-failed
    fi
}

running=0
for target in $(cargo +nightly fuzz list); do
    if [ "$running" -ge "$jobs" ]; then
        wait
        running=0
    fi
    fuzz_one "$target" &
    running=$((running + 1))
done
wait
if [ -s target/fuzz-failed ]; then
    echo "crashes in: $(tr '\n' ' ' <target/fuzz-failed)" >&2
    exit 1
fi
