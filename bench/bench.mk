# SPDX-License-Identifier: BSD-2-Clause
# make bench: never part of make check. See bench/run.sh.
$(B)/bench/pam_loop: bench/pam_loop.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< -lpam $(ALL_LDFLAGS)

$(B)/bench/verify_loop: bench/verify_loop.c $(B)/libapikey.so
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< -L$(B) -l:libapikey.so -Wl,-rpath,'$$ORIGIN/..' -lcrypto -lpthread $(ALL_LDFLAGS)

$(B)/bench/propagation: bench/propagation.c $(B)/libapikey.so
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< -L$(B) -l:libapikey.so -Wl,-rpath,'$$ORIGIN/..' $(ALL_LDFLAGS)

.PHONY: bench
# Inside the test harness's private PostgreSQL and pgbouncer, for the pgsql rows.
bench: deps all $(B)/bench/pam_loop $(B)/bench/verify_loop $(B)/bench/fastest
	if [ -f tests/pg_harness.sh ]; then sh tests/pg_harness.sh sh bench/run.sh; else sh bench/run.sh; fi
	sh bench/nginx.sh
	sh bench/authd.sh
	sh bench/dashboard.sh
	sh tests/pg_harness.sh sh bench/fleet.sh
bench: $(B)/bench/propagation

$(B)/bench/timing: bench/timing.c $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fvisibility=default -Iloader -Icommon -o $@ $< $(CORE_LIB) $(CORE_LIBS) $(ALL_LDFLAGS)
bench: $(B)/bench/timing

$(B)/bench/fastest: bench/fastest.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(ALL_LDFLAGS)

# The nginx rows alone (bench/nginx.sh adds its section to bench/RESULTS.md).
.PHONY: bench-nginx
bench-nginx: all
	sh bench/nginx.sh
