# SPDX-License-Identifier: BSD-2-Clause
# Tests: CUnit programs under tests/, run by `make run-tests`.
TEST_CFLAGS = $(ALL_CFLAGS) -fvisibility=default -Iloader -Icommon
TEST_LIBS = $(CORE_LIB) $(CORE_LIBS) -lcunit

# (A pattern needs a non-empty stem: test_pam itself is named too.)
$(B)/tests/test_pam $(B)/tests/test_pam%: TEST_EXTRA_LIBS = -lpam -lpam_misc

$(B)/tests/%: tests/%.c tests/testutil.c tests/testutil.h $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -Itests -o $@ $< tests/testutil.c $(TEST_LIBS) $(TEST_EXTRA_LIBS) $(ALL_LDFLAGS)

# Hosts that know only include/apikey.h, and a store driven through
# include/apikey_store.h alone (a store, or an old core played against
# today's stores): no libapikey, no OpenSSL at link time.
$(B)/tests/test_host_dlopen $(B)/tests/test_host_admin $(B)/tests/test_store_abi $(B)/tests/test_old_core: $(B)/tests/%: tests/%.c include/apikey.h include/apikey_store.h tests/testutil.c
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -Itests -o $@ $< tests/testutil.c -ldl -lpthread -lcunit $(ALL_LDFLAGS)

# Preloaded into the apikey command by test_faults.
$(B)/tests/libfault.so: tests/faultinject.c
	@mkdir -p $(dir $@)
	$(CC) -shared -fPIC -O1 -g -Wall -Wextra -Werror -o $@ $< -ldl

# What an attacker plants (a backend, an OpenSSL provider): test_privileged, su.sh.
$(B)/tests/libplanted.so: tests/planted.c
	@mkdir -p $(dir $@)
	$(CC) -shared -fPIC -O1 -Wall -Wextra -Werror -o $@ $<

UNIT_TESTS := $(patsubst tests/%.c,$(B)/tests/%,$(filter-out tests/testutil.c,$(wildcard tests/test_*.c)))

.PHONY: run-tests
run-tests: all $(UNIT_TESTS) $(B)/tests/libfault.so $(B)/tests/libplanted.so
	sh tests/run.sh

$(B)/tests/test_privileged: TEST_EXTRA_LIBS = -lpam
# It reads list --json as a client would.
$(B)/tests/test_conformance: TEST_EXTRA_LIBS = -ljansson
$(B)/tests/test_pgsql_privileged: TEST_EXTRA_LIBS = -lpq $(STORE_CFLAGS_pgsql)
# libpq: reads the change log as apikey-syncd does.
$(B)/tests/test_store_pgsql: TEST_EXTRA_LIBS = -lpq $(STORE_CFLAGS_pgsql)

$(B)/tests/test_json_migration: TEST_EXTRA_LIBS = -ljansson
$(B)/tests/test_store_sqlite: TEST_EXTRA_LIBS = -lsqlite3 -lpthread
# libpq: the pgsql kind reads the working database to compare it.
$(B)/tests/test_faults: TEST_EXTRA_LIBS = -lsqlite3 -lpq $(STORE_CFLAGS_pgsql)
# It reads the store's own tables beside the build.
$(B)/tests/test_store_upgrade: TEST_EXTRA_LIBS = -lsqlite3 -lpq $(STORE_CFLAGS_pgsql)

# A store backend built for store ABI 1: test_old_backend.
$(B)/tests/abi1/apikey_store_old.so: tests/abi1/store_old.c include/apikey_store.h
	@mkdir -p $(dir $@)
	$(CC) -shared -fPIC -O1 -Wall -Wextra -Werror -Iinclude -fvisibility=hidden -o $@ $<
$(B)/tests/test_old_backend: $(B)/tests/abi1/apikey_store_old.so

# The HTTP hosts' credential rules (common/), tested alone.
$(B)/tests/test_credential: TEST_EXTRA_LIBS = -Icommon $(B)/obj/common/credential.o
$(B)/tests/test_credential: $(B)/obj/common/credential.o
