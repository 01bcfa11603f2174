/* SPDX-License-Identifier: BSD-2-Clause */
#ifndef APIKEY_HOT_PATH_H
#define APIKEY_HOT_PATH_H

/* A function every check runs through. GCC puts it in .text.hot, which the
 * linker lays out side by side, so a check's code spans a few pages of each
 * library instead of being scattered across them. Hosts make system calls
 * between checks (nginx six a request), and on a machine with page-table
 * isolation and no PCID each one empties the TLB: every page a check
 * touches is then a page walk again (doc/ARCHITECTURE.md, "The check's
 * footprint"). */
#define HOT_PATH __attribute__((hot))

#endif
