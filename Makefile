# SPDX-License-Identifier: BSD-2-Clause
# pam_apikey - API-key authentication for Linux.
# `make` builds everything into build/, usable in place.
# `make check` installs missing Debian packages, builds and runs every test.
# `make demo` runs the key lifecycle on a private store through the real PAM stack.

VERSION    := 0.1.0
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
STOREDIR   ?= $(LIBDIR)/apikey/store
INCDIR     ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
PAMDIR     ?= $(shell pkg-config --variable=libdir pam 2>/dev/null || echo /lib/x86_64-linux-gnu)/security

B := build
CC ?= cc
CFLAGS ?= -O2 -g
# WERROR= turns warnings back into warnings, for a packager on a newer
# compiler; development and CI keep -Werror.
WERROR ?= -Werror
WARN := -Wall -Wextra $(WERROR) -Wshadow -Wformat=2 -Wno-format-nonliteral
# Hardening, always: the module runs as root inside su and sshd (pam_apikey(8)).
# A packager's CPPFLAGS, CFLAGS and LDFLAGS (dpkg-buildflags) come after ours
# and win; _FORTIFY_SOURCE is ours only when theirs does not set a level,
# since a second, different definition would be an error under -Werror.
HARDEN_CFLAGS := -fstack-protector-strong -fstack-clash-protection -fcf-protection
ifeq ($(findstring _FORTIFY_SOURCE,$(CPPFLAGS) $(CFLAGS) $(EXTRA_CFLAGS)),)
HARDEN_CPPFLAGS := -D_FORTIFY_SOURCE=2
endif
HARDEN_LDFLAGS := -Wl,-z,relro -Wl,-z,now -Wl,-z,noexecstack
BASE_CFLAGS := -std=gnu11 $(WARN) -fPIC -fvisibility=hidden -D_GNU_SOURCE -Iinclude \
	-DAPIKEY_VERSION='"$(VERSION)"' -DAPIKEY_STOREDIR='"$(STOREDIR)"' \
	-DAPIKEY_DEFAULT_CONFIG='"$(SYSCONFDIR)/apikey/apikey.conf"' $(HARDEN_CFLAGS) $(HARDEN_CPPFLAGS)
CPPFLAGS ?=
ALL_CFLAGS = $(BASE_CFLAGS) $(CPPFLAGS) $(CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS ?=
ALL_LDFLAGS = $(HARDEN_LDFLAGS) $(LDFLAGS) $(EXTRA_LDFLAGS)

# Each folder sees include/ and what it may use besides: a store backend only
# include/ (it links nothing of the core), the command, the helper and
# apikey-authd the shared leaves of common/, the PAM module and apikey-syncd
# the core's internals too (the context cache, the replica).
INC_loader := -Iloader -Icommon
INC_common := -Icommon
INC_cli := -Icommon
INC_helper := -Icommon
INC_authd := -Icommon
INC_pam_apikey := -Iloader -Icommon
INC_syncd := -Iloader -Icommon

# common/: leaf sources (no libapikey state) shared by the library and its
# hosts, so that they read addresses, log values and secrets by the same
# rules; apikey-authd links no libapikey at build time. The credential rules
# are the HTTP hosts' alone (nginx compiles them through nginx/config), a
# key's record in JSON the command's and apikey-authd's.
COMMON_SRC := $(wildcard common/*.c)
HOST_ONLY_SRC := common/credential.c common/key_json.c
CORE_SRC := $(wildcard loader/*.c) $(filter-out $(HOST_ONLY_SRC),$(COMMON_SRC))
CORE_OBJ := $(CORE_SRC:%.c=$(B)/obj/%.o)
CORE_LIB := $(B)/libapikey_core.a
CORE_LIBS := -lcrypto -ldl -lpthread

# Every folder under store/ with C sources is a backend, but for the shared
# sources that STORE_SHARED_<name> compiles into a backend (store/sql/: the
# SQL stores' schema and row decoding).
STORE_SHARED := sql
STORES := $(filter-out $(STORE_SHARED),$(sort $(notdir $(patsubst %/,%,$(dir $(wildcard store/*/*.c))))))
STORE_SHARED_sqlite := sql
STORE_SHARED_pgsql := sql
STORE_SO := $(STORES:%=$(B)/store/apikey_store_%.so)
STORE_LIBS_json := -ljansson
STORE_LIBS_sqlite := -lsqlite3
STORE_LIBS_pgsql := -lpq
STORE_CFLAGS_pgsql := -I$(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)

PROGRAMS := $(B)/apikey $(B)/basic_apikey_auth
TARGETS := $(B)/libapikey.so $(STORE_SO) $(PROGRAMS)
ifneq ($(wildcard pam_apikey/*.c),)
TARGETS += $(B)/pam_apikey.so $(B)/pam_try
endif

# Paths and flags compiled in: rebuild when PREFIX, SYSCONFDIR or the flags
# change, so `make install PREFIX=/usr` never installs a library that looks
# elsewhere, and a packager's flags reach every object.
BUILD_STAMP := $(B)/build.stamp
DEPFLAGS := -MMD -MP
BUILD_ID := $(STOREDIR) $(SYSCONFDIR) $(ALL_CFLAGS) $(ALL_LDFLAGS) $(DEPFLAGS)
ifneq ($(file <$(BUILD_STAMP)),$(strip $(BUILD_ID)))
$(shell mkdir -p $(B))
$(file >$(BUILD_STAMP),$(strip $(BUILD_ID)))
endif

.PHONY: all check test demo install uninstall deps clean bench check-sanitize deb
all: $(TARGETS)

$(B)/obj/%.o: %.c $(BUILD_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) $(INC_$(firstword $(subst /, ,$*))) \
		$(STORE_CFLAGS_$(word 2,$(subst /, ,$*))) -c $< -o $@
-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

$(CORE_LIB): $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

# nodelete: libpam dlcloses modules at every pam_end; OpenSSL and the loaded
# store keep state that must not be unmapped under them.
$(B)/libapikey.so: $(CORE_LIB) loader/libapikey.map
	$(CC) -shared -o $@ -Wl,--whole-archive $(CORE_LIB) -Wl,--no-whole-archive \
		-Wl,--version-script=loader/libapikey.map -Wl,-z,nodelete -Wl,-soname,libapikey.so.1 \
		$(ALL_LDFLAGS) $(CORE_LIBS)
	ln -sf libapikey.so $(B)/libapikey.so.1

.SECONDEXPANSION:
$(B)/store/apikey_store_%.so: $$(addprefix $(B)/obj/,$$(subst .c,.o,$$(wildcard store/$$*/*.c $$(addprefix store/,$$(addsuffix /*.c,$$(STORE_SHARED_$$*)))))) store/store.map
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $(filter %.o,$^) -Wl,--version-script=store/store.map -Wl,-z,nodelete \
		$(ALL_LDFLAGS) $(STORE_LIBS_$*)

$(B)/apikey: $(patsubst %.c,$(B)/obj/%.o,$(wildcard cli/*.c)) $(B)/obj/common/key_json.o $(CORE_LIB)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(CORE_LIBS) -ljansson

# apikey-syncd keeps a replica of a PostgreSQL store (syncd/, loader/replica.h).
SYNCD_OBJ := $(patsubst %.c,$(B)/obj/%.o,$(wildcard syncd/*.c)) $(B)/obj/store/sql/sql_schema.o
$(SYNCD_OBJ): ALL_CFLAGS += $(STORE_CFLAGS_pgsql)
$(B)/apikey-syncd: $(SYNCD_OBJ) $(CORE_LIB)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(CORE_LIBS) -lpq -lsqlite3
all: $(B)/apikey-syncd

$(B)/basic_apikey_auth: $(patsubst %.c,$(B)/obj/%.o,$(wildcard helper/*.c)) $(CORE_LIB)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(CORE_LIBS)

$(B)/pam_apikey.so: $(patsubst %.c,$(B)/obj/%.o,$(wildcard pam_apikey/*.c)) $(CORE_LIB) pam_apikey/pam_apikey.map
	$(CC) -shared -o $@ $(filter %.o %.a,$^) -Wl,--version-script=pam_apikey/pam_apikey.map \
		-Wl,-z,nodelete $(ALL_LDFLAGS) $(CORE_LIBS) -lpam

# Logins through libpam from a private service folder: make demo, valgrind test.
$(B)/pam_try: tools/pam_try.c
	$(CC) $(ALL_CFLAGS) -o $@ $< $(ALL_LDFLAGS) -lpam

include tests/tests.mk
include fuzz/fuzz.mk
include bench/bench.mk

deps:
	@sh tools/install-deps.sh

check: deps
	$(MAKE) test

# Every test, without installing anything: for packagers and for a machine
# that already has what tools/install-deps.sh installs.
test: all
	$(MAKE) run-tests

demo: deps
	$(MAKE) all
	sh tools/demo.sh

PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

$(B)/apikey.pc: apikey.pc.in $(BUILD_STAMP)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
	    -e 's|@STOREDIR@|$(STOREDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@
all: $(B)/apikey.pc

INSTALLED := $(BINDIR)/apikey $(BINDIR)/basic_apikey_auth $(LIBDIR)/libapikey.so.1 \
	$(LIBDIR)/libapikey.so $(STORES:%=$(STOREDIR)/apikey_store_%.so) $(INCDIR)/apikey.h \
	$(INCDIR)/apikey_store.h $(INCDIR)/apikey_key.h $(PKGCONFIGDIR)/apikey.pc $(PAMDIR)/pam_apikey.so \
	$(patsubst man/%,$(MANDIR)/man1/%,$(wildcard man/*.1)) \
	$(patsubst man/%,$(MANDIR)/man5/%,$(wildcard man/*.5)) \
	$(patsubst man/%,$(MANDIR)/man8/%,$(wildcard man/*.8))

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(STOREDIR) $(DESTDIR)$(INCDIR) \
		$(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(PAMDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(PROGRAMS) $(DESTDIR)$(BINDIR)/
	install -m 0755 $(B)/libapikey.so $(DESTDIR)$(LIBDIR)/libapikey.so.1
	ln -sf libapikey.so.1 $(DESTDIR)$(LIBDIR)/libapikey.so
	install -m 0755 $(STORE_SO) $(DESTDIR)$(STOREDIR)/
	install -m 0644 include/apikey.h include/apikey_store.h include/apikey_key.h $(DESTDIR)$(INCDIR)/
	install -m 0644 $(B)/apikey.pc $(DESTDIR)$(PKGCONFIGDIR)/
	[ ! -f $(B)/pam_apikey.so ] || install -m 0755 $(B)/pam_apikey.so $(DESTDIR)$(PAMDIR)/
	install -m 0644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 man/*.5 $(DESTDIR)$(MANDIR)/man5/
	[ -z "$(wildcard man/*.8)" ] || install -m 0644 man/*.8 $(DESTDIR)$(MANDIR)/man8/

# What install put there, and nothing else: never a configuration or a store.
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(DESTDIR)$(STOREDIR) 2>/dev/null

clean:
	rm -rf $(B)

# Debian packages (debian/), as debuild builds them, into build/deb/.
# dpkg-buildpackage writes beside the source tree: the files it writes there
# are moved here. A package whose sources are not in the tree yet is left out
# through its build profile.
DEB_PROFILES := $(if $(wildcard authd/*.c),,pkg.pam-apikey.noauthd) \
	$(if $(wildcard nginx/config),,pkg.pam-apikey.nonginx)
DEB_CHANGES = ../pam-apikey_$(VERSION)_$(shell dpkg-architecture -qDEB_HOST_ARCH).changes
deb:
	dpkg-buildpackage -us -uc -b $(if $(strip $(DEB_PROFILES)),-P$$(echo $(DEB_PROFILES) | tr ' ' ,))
	rm -rf $(B)/deb && mkdir -p $(B)/deb
	awk '/^Files:/ {f = 1; next} f && /^ / {print "../" $$NF}' $(DEB_CHANGES) | xargs mv -t $(B)/deb/
	mv $(DEB_CHANGES) $(B)/deb/

# Keep object files that pattern rules made: no rebuilds on every run.
.SECONDARY:

# The example host links only libdl: libapikey comes in at run time.
$(B)/examples/apikey_http_host: examples/http_host.c include/apikey.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< -ldl $(ALL_LDFLAGS)
all: $(B)/examples/apikey_http_host

check-sanitize: deps
	sh tools/check-sanitize.sh

include nginx/nginx.mk

include authd/authd.mk

install: install-syncd
INSTALLED += $(SBINDIR)/apikey-syncd $(UNITDIR)/apikey-syncd.service
.PHONY: install-syncd
install-syncd: $(B)/apikey-syncd
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR)
	install -m 0755 $(B)/apikey-syncd $(DESTDIR)$(SBINDIR)/
	sed -e 's#/usr/sbin/apikey-syncd#$(SBINDIR)/apikey-syncd#' -e 's#/etc/apikey/#$(SYSCONFDIR)/apikey/#' \
		etc/systemd/apikey-syncd.service > $(DESTDIR)$(UNITDIR)/apikey-syncd.service
