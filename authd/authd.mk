# SPDX-License-Identifier: BSD-2-Clause
# --- apikey-authd: forward authentication over HTTP (authd/, apikey-authd(8)) -
# It loads libapikey at run time through include/apikey.h's table (beside the
# binary, else $(LIBDIR)), so it links only libmicrohttpd, Jansson and libdl.
SBINDIR ?= $(PREFIX)/sbin
UNITDIR ?= $(PREFIX)/lib/systemd/system
# The shared leaves it uses (common/): a key's record in JSON is the apikey
# command's, the credential rules the nginx module's.
AUTHD_COMMON := common/cidr.c common/credential.c common/libload.c common/logvalue.c
AUTHD_OBJ := $(patsubst %.c,$(B)/obj/%.o,$(wildcard authd/*.c) $(AUTHD_COMMON) common/key_json.c)
AUTHD_STAMP := $(B)/authd-paths.stamp
$(shell mkdir -p $(B); echo '$(LIBDIR)' | cmp -s - $(AUTHD_STAMP) || echo '$(LIBDIR)' > $(AUTHD_STAMP))
$(B)/obj/authd/library.o: $(AUTHD_STAMP)
$(B)/obj/authd/library.o: ALL_CFLAGS += -DAPIKEY_LIBDIR='"$(LIBDIR)"'
# The dashboard's page is compiled into the daemon (.incbin).
$(B)/obj/authd/dashboard.o: ALL_CFLAGS += -DAUTHD_WWW='"$(CURDIR)/authd/www"'
$(B)/obj/authd/dashboard.o: $(wildcard authd/www/*)

$(B)/apikey-authd: $(AUTHD_OBJ)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) -lmicrohttpd -ljansson -ldl -lpthread
all: $(B)/apikey-authd

# The daemon's address and settings logic, tested directly.
$(B)/tests/test_authd: tests/test_authd.c tests/testutil.c $(filter-out $(B)/obj/authd/main.o $(B)/obj/authd/http.o $(B)/obj/authd/dashboard.o $(B)/obj/authd/admin.o $(B)/obj/authd/library.o $(B)/obj/common/key_json.o,$(AUTHD_OBJ)) $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -Itests -Iauthd -o $@ $(filter %.c %.o,$^) $(TEST_LIBS) $(ALL_LDFLAGS)

# A libmicrohttpd server that answers 200 and nothing else: the floor for
# the daemon's CPU time per request in make bench.
$(B)/bench/mhd_floor: bench/mhd_floor.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(ALL_LDFLAGS) -lmicrohttpd
bench: $(B)/bench/mhd_floor $(B)/apikey-authd

# make fuzz: the daemon's configuration reading and forwarded addresses.
FUZZ_TARGETS += authd
FUZZ_SRC_authd := authd/settings.c authd/client_addr.c authd/metrics.c $(AUTHD_COMMON)
$(B)/fuzz/fuzz_authd: $(wildcard authd/*.c authd/*.h common/*.c common/*.h)
fuzz-build: $(B)/fuzz/fuzz_authd

install: install-authd
INSTALLED += $(SBINDIR)/apikey-authd $(UNITDIR)/apikey-authd.service
.PHONY: install-authd
install-authd: $(B)/apikey-authd
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(B)/apikey-authd $(DESTDIR)$(SBINDIR)/
	sed -e 's#/usr/sbin/apikey-authd#$(SBINDIR)/apikey-authd#' -e 's#/etc/apikey/#$(SYSCONFDIR)/apikey/#' \
		etc/systemd/apikey-authd.service > $(DESTDIR)$(UNITDIR)/apikey-authd.service
# --- end of apikey-authd -----------------------------------------------------
