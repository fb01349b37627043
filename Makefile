# Build and install jpki-pkcs11: the PKCS#11 module, the `jpki` command, its man page and its
# bash, zsh and fish completions.
#
#   make                      # cargo build --release
#   sudo make install         # PREFIX=/usr/local by default
#   sudo make install PREFIX=/usr      # where Debian keeps PKCS#11 modules and p11-kit reads them
#   make install DESTDIR=/tmp/stage    # staged install (packaging)
#   sudo make uninstall       # removes exactly the files `install` put there (same variables)
#
# Variables: PREFIX (/usr/local), DESTDIR (empty), LIBDIR ($(PREFIX)/lib/<multiarch>, from
# dpkg-architecture or gcc -print-multiarch; $(PREFIX)/lib without one), BINDIR, MANDIR,
# P11KITDIR, BASHCOMPDIR, ZSHCOMPDIR, FISHCOMPDIR, PROFILE (release; `debug` installs a
# `cargo build` tree), CARGO_TARGET_DIR (target).
# `install` never runs cargo (so `sudo make install` builds nothing as root): run `make` first.
# It runs the built `jpki generate completions SHELL` to write the completion scripts; the man
# page is the committed man/jpki.1 (`jpki generate man`, checked by cli/tests/generated.rs).

PREFIX ?= /usr/local
DESTDIR ?=
MULTIARCH := $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null)
LIBDIR ?= $(PREFIX)/lib$(if $(MULTIARCH),/$(MULTIARCH))
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
P11KITDIR ?= $(PREFIX)/share/p11-kit/modules
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
CARGO ?= cargo
CARGO_TARGET_DIR ?= target
PROFILE ?= release
INSTALL ?= install

BUILD_DIR := $(CARGO_TARGET_DIR)/$(PROFILE)
MODULE_PATH := $(LIBDIR)/pkcs11/libjpki_pkcs11.so
COMPLETIONS := $(BASHCOMPDIR)/jpki $(ZSHCOMPDIR)/_jpki $(FISHCOMPDIR)/jpki.fish
INSTALLED := $(MODULE_PATH) $(BINDIR)/jpki $(MANDIR)/man1/jpki.1 $(P11KITDIR)/jpki.module \
	$(COMPLETIONS)

.PHONY: all build install uninstall installed-files

all: build

build:
	$(CARGO) build $(if $(filter debug,$(PROFILE)),,--profile $(PROFILE)) -p jpki-pkcs11 --lib -p jpki-cli --bin jpki

$(BUILD_DIR)/libjpki_pkcs11.so $(BUILD_DIR)/jpki:
	@echo "$@ is not built: run \`make\` (or \`make PROFILE=$(PROFILE)\`) first" >&2; exit 1

install: $(BUILD_DIR)/libjpki_pkcs11.so $(BUILD_DIR)/jpki
	$(INSTALL) -d $(DESTDIR)$(LIBDIR)/pkcs11 $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(P11KITDIR) \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	$(INSTALL) -m 0644 $(BUILD_DIR)/libjpki_pkcs11.so $(DESTDIR)$(MODULE_PATH)
	$(INSTALL) -m 0755 $(BUILD_DIR)/jpki $(DESTDIR)$(BINDIR)/jpki
	$(INSTALL) -m 0644 man/jpki.1 $(DESTDIR)$(MANDIR)/man1/jpki.1
	printf '# jpki-pkcs11: the PKCS#11 module of the JPKI My Number Card\nmodule: %s\n' '$(MODULE_PATH)' > $(DESTDIR)$(P11KITDIR)/jpki.module
	chmod 0644 $(DESTDIR)$(P11KITDIR)/jpki.module
	$(BUILD_DIR)/jpki generate completions bash > $(DESTDIR)$(BASHCOMPDIR)/jpki
	$(BUILD_DIR)/jpki generate completions zsh > $(DESTDIR)$(ZSHCOMPDIR)/_jpki
	$(BUILD_DIR)/jpki generate completions fish > $(DESTDIR)$(FISHCOMPDIR)/jpki.fish
	chmod 0644 $(addprefix $(DESTDIR),$(COMPLETIONS))

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))

# The files `install` puts in place (without DESTDIR), one a line.
installed-files:
	@printf '%s\n' $(INSTALLED)
