# SPDX-License-Identifier: BSD-2-Clause
# ---- nginx dynamic module: build/nginx/ngx_http_apikey_module.so ----------
# Built as Debian builds its libnginx-mod-* packages: nginx's configure, run
# on the configured source of nginx-dev (/usr/share/nginx/src) with the
# packaged nginx's flags (conf_flags, --with-compat), then `make modules`.
# Skipped quietly when nginx-dev is not installed. nginx compiles with
# -W -Wall -Werror; -Wextra is ours, -Wno-unused-parameter is nginx's (its
# callbacks take arguments a module need not use).
NGINX_SRC ?= /usr/share/nginx/src
ifneq ($(wildcard $(NGINX_SRC)/configure $(NGINX_SRC)/conf_flags),)
NGX_B := $(B)/nginx
NGX_CC_OPT = -g -O2 -fstack-protector-strong -Wformat -Werror=format-security -fPIC \
	-D_FORTIFY_SOURCE=2 -Wextra -Wno-unused-parameter -include $(abspath $(NGX_B))/libdir.h \
	$(CPPFLAGS) $(CFLAGS)
NGX_LD_OPT = -Wl,-z,relro -Wl,-z,now -fPIC $(LDFLAGS)

# Where `make install` puts libapikey.so.1: the module looks there too.
# Rewritten only when LIBDIR changes.
NGX_LIBDIR_H := \#define NGX_APIKEY_LIBDIR "$(LIBDIR)"
$(shell mkdir -p $(NGX_B); echo '$(NGX_LIBDIR_H)' | cmp -s - $(NGX_B)/libdir.h || echo '$(NGX_LIBDIR_H)' > $(NGX_B)/libdir.h)

$(NGX_B)/src/objs/Makefile: nginx/config $(NGINX_SRC)/conf_flags $(NGX_B)/libdir.h
	rm -rf $(NGX_B)/src && mkdir -p $(NGX_B)/src
	cp -r $(NGINX_SRC)/. $(NGX_B)/src/
	cd $(NGX_B)/src && bash -c '. ./conf_flags && ./configure "$${NGX_CONF_FLAGS[@]}" \
		--with-cc-opt="$(NGX_CC_OPT)" --with-ld-opt="$(NGX_LD_OPT)" \
		--add-dynamic-module=$(CURDIR)/nginx' > ../configure.log 2>&1 \
		|| { tail -n 20 ../configure.log; exit 1; }

$(NGX_B)/ngx_http_apikey_module.so: nginx/ngx_http_apikey_module.c include/apikey.h common/credential.c common/libload.c common/libload.h \
		common/credential.h $(NGX_B)/src/objs/Makefile
	$(MAKE) -s -C $(NGX_B)/src -f objs/Makefile modules
	# A new file, not one rewritten in place: a running nginx maps the old one.
	cp $(NGX_B)/src/objs/ngx_http_apikey_module.so $@.tmp && mv -f $@.tmp $@

all: $(NGX_B)/ngx_http_apikey_module.so
install: install-nginx
.PHONY: install-nginx
NGINX_MODDIR ?= /usr/lib/nginx/modules
INSTALLED += $(NGINX_MODDIR)/ngx_http_apikey_module.so
install-nginx: $(NGX_B)/ngx_http_apikey_module.so
	install -d $(DESTDIR)$(NGINX_MODDIR)
	install -m 0644 $(NGX_B)/ngx_http_apikey_module.so $(DESTDIR)$(NGINX_MODDIR)/
endif
# ---- end of the nginx module ----------------------------------------------
