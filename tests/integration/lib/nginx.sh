# SPDX-License-Identifier: BSD-2-Clause
# A private nginx for the module's tests (nginx.sh, credentials.sh), sourced
# after servers.sh; it sits in lib/ so that tests/run.sh does not run it.
#
# nginx_conf DIR MODULE HTTP-CONTENT: DIR/nginx.conf, one worker (user
# proxy, which reads the stores through their group) in the foreground,
# loading MODULE, its pid, error log (level info) and temporary files in
# DIR, no access log, and HTTP-CONTENT inside http { }.
nginx_conf() {
    mkdir -p "$1/tmp" && chown proxy "$1/tmp"
    cat > "$1/nginx.conf" <<CONF
load_module $2;
user proxy;
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log info;
events { }
http {
    access_log off;
    client_body_temp_path $1/tmp/body; proxy_temp_path $1/tmp/proxy; fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi; scgi_temp_path $1/tmp/scgi;
$3
}
CONF
}
