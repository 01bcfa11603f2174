# SPDX-License-Identifier: BSD-2-Clause
# make fuzz: libFuzzer targets built with clang, ASan and UBSan, each run
# for FUZZ_SECONDS from its committed seed corpus. Any crash fails.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-std=gnu11 -D_GNU_SOURCE -Iinclude -Iloader -Icommon -Istore/json -Ihelper \
	-DAPIKEY_VERSION='"fuzz"' -DAPIKEY_STOREDIR='"$(CURDIR)/$(B)/store"' -DAPIKEY_DEFAULT_CONFIG='"/nonexistent"'
# The rate table's 16-byte compare-and-swap: clang makes it a library call
# unless the whole unit may use cmpxchg16b.
FUZZ_FLAGS += $(if $(filter x86_64,$(shell uname -m)),-mcx16)
FUZZ_TARGETS := keycodec config json_store helper_line verify
FUZZ_SRC_keycodec := loader/keycodec.c
FUZZ_SRC_config := loader/config.c loader/keycodec.c loader/secfile.c loader/timeutil.c loader/ratelimit.c
FUZZ_SRC_json_store := store/json/json_format.c store/json/json_table.c
FUZZ_LIBS_json_store := -ljansson
FUZZ_SRC_helper_line := helper/helper_line.c
# What a client sends the HTTP hosts as its credential (common/).
FUZZ_TARGETS += credential
FUZZ_SRC_credential := common/credential.c
$(B)/fuzz/fuzz_credential: FUZZ_FLAGS += -Icommon
$(B)/fuzz/fuzz_credential: common/credential.c common/credential.h
FUZZ_SRC_verify := $(CORE_SRC)
FUZZ_LIBS_verify := -lcrypto -ldl -lpthread
FUZZ_LIBS_keycodec := -lcrypto
FUZZ_LIBS_config := -lcrypto

$(B)/fuzz/fuzz_%: fuzz/fuzz_%.c $(wildcard loader/*.c loader/*.h common/*.c common/*.h store/json/*.c helper/*.c)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_SRC_$*) $(FUZZ_LIBS_$*)

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_TARGETS:%=$(B)/fuzz/fuzz_%)

fuzz: all fuzz-build
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p $(B)/fuzz/corpus-$$t; \
		echo "=== fuzz_$$t for $(FUZZ_SECONDS)s"; \
		$(B)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
			-print_final_stats=1 -artifact_prefix=$(B)/fuzz/crash-$$t- \
			$(B)/fuzz/corpus-$$t fuzz/corpus/$$t > $(B)/fuzz/$$t.log 2>&1; rc=$$?; \
		grep -E 'stat::number_of_executed_units|ERROR|SUMMARY' $(B)/fuzz/$$t.log; \
		if [ $$rc -ne 0 ]; then tail -40 $(B)/fuzz/$$t.log; echo "fuzz_$$t FAILED"; exit 1; fi; \
	done
