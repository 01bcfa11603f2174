#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# make check-sanitize: the whole test suite built with ASan and UBSan, in a
# copy of the tree (build-san/), so the tests' relative paths hold. Servers
# that cannot load an instrumented module (sshd, Squid, Dante) are left to
# make check; the PAM tests run here, through the real libpam.
set -e
cd "$(dirname "$0")/.."
rm -rf build-san
mkdir -p build-san
tar --exclude=./build --exclude=./build-san --exclude=./.git -cf - . | tar -xf - -C build-san
cd build-san
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:detect_odr_violation=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export PAM_WRAPPER_DISABLE_DEEPBIND=1
# A module under ASan is loaded by programs that are not: preload the runtime.
export APIKEY_TEST_ASAN_PRELOAD="$(gcc -print-file-name=libasan.so)"
export APIKEY_TEST_SKIP_SERVERS=1 APIKEY_TEST_SANITIZE=1
make -j2 all EXTRA_CFLAGS="$SAN -O1" EXTRA_LDFLAGS="$SAN"
make run-tests EXTRA_CFLAGS="$SAN -O1" EXTRA_LDFLAGS="$SAN"
