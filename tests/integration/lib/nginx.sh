# SPDX-License-Identifier: BSD-2-Clause
# A private nginx for the module's tests (nginx.sh, credentials.sh,
# ratelimit.sh, dashboard.sh), sourced after servers.sh; it sits in lib/ so
# that tests/run.sh does not run it.
#
# nginx_tree DIR [PATH TEXT]: DIR/www holding PATH (default f/index.txt,
# saying "file ok"; an empty TEXT: an empty file), readable by all, and DIR/tmp owned by proxy; the module
# as $T/build/nginx/ngx_http_apikey_module.so (NGX_MODULE) with libapikey in
# the folder above it, where the module looks first, as in build/.
nginx_tree() {
    mkdir -p "$(dirname "$1/www/${2:-f/index.txt}")" "$1/tmp" "$T/build/nginx" && chown proxy "$1/tmp"
    if [ $# -ge 3 ] && [ -z "$3" ]; then : > "$1/www/$2"; else echo "${3-file ok}" > "$1/www/${2:-f/index.txt}"; fi
    chmod -R a+rX "$1/www"
    NGX_MODULE=$T/build/nginx/ngx_http_apikey_module.so
    cp build/nginx/ngx_http_apikey_module.so "$NGX_MODULE"
    cp build/libapikey.so "$T/build/libapikey.so.1"
}

# nginx_temp DIR: the lines of http { } that keep nginx's temporary files in
# DIR/tmp.
nginx_temp() {
    echo "    client_body_temp_path $1/tmp/body; proxy_temp_path $1/tmp/proxy; fastcgi_temp_path $1/tmp/fastcgi;"
    echo "    uwsgi_temp_path $1/tmp/uwsgi; scgi_temp_path $1/tmp/scgi;"
}

# nginx_top DIR MODULE WORKERS CONNECTIONS: what comes before http { }: the
# module loaded, WORKERS workers as proxy in the foreground, the pid and the
# error log (level info) in DIR, CONNECTIONS per worker (nginx's default
# when empty).
nginx_top() {
    cat <<CONF
load_module $2;
user proxy;
worker_processes $3;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log info;
events { ${4:+worker_connections $4;} }
CONF
}
#
# nginx_conf DIR MODULE HTTP-CONTENT: DIR/nginx.conf, one worker (user
# proxy, which reads the stores through their group) in the foreground,
# loading MODULE, its pid, error log (level info) and temporary files in
# DIR, no access log, and HTTP-CONTENT inside http { }.
nginx_conf() {
    mkdir -p "$1/tmp" && chown proxy "$1/tmp"
    cat > "$1/nginx.conf" <<CONF
$(nginx_top "$1" "$2" 1)
http {
    access_log off;
$(nginx_temp "$1")
$3
}
CONF
}
