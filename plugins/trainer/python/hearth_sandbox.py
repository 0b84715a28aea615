"""The PyTorch trainer's sandbox (plugins/trainer, sandbox.go): Landlock,
capabilities dropped, and a small seccomp filter, applied by the harness
to its own process before the job's script is imported. Linux only;
x86_64 and aarch64.

It comes in two steps, because the listening socket must be bound in
between and because Landlock (unlike seccomp) confines only the thread
that asks and the threads it starts afterwards:

begin(policy), while the process has one thread (torch and grpc
imported, no gRPC server made yet): no_new_privs; every capability
dropped (the site may run as root: no module loading, no raw I/O, no
mknod, no override of file modes); a Landlock domain that handles every
filesystem right of the kernel's ABI and allows only the policy's rules
and the launcher file itself, forbids TCP connect (ABI 4) and scopes
signals and abstract unix sockets (ABI 6) to the domain. gRPC's core
threads, made next, are born inside it.

finish(), once the listener is bound: a second Landlock layer that
forbids TCP bind as well (ABI 4), and the seccomp filter, on every
thread at once (TSYNC; threads made later inherit it):

    socket(), socketpair(): only AF_UNIX, of type SOCK_STREAM or
        SOCK_SEQPACKET; anything else EPERM (no UDP, raw or netlink
        socket: Landlock does not cover them, and an AF_UNIX datagram
        socket could send to a path without connecting)
    connect(): EPERM (Landlock up to ABI 7 does not check connecting
        to a unix socket by path, e.g. a daemon's control socket)
    io_uring_setup(): EPERM (io_uring bypasses seccomp)
    ptrace(), process_vm_readv(), process_vm_writev(): EPERM
    clone(): only with CLONE_THREAD in its flags (its first argument on
        x86_64 and aarch64 alike): a thread; a new process EPERM
    clone3(): ENOSYS (its flags lie in memory, out of the filter's
        sight; glibc then falls back to clone(), whose flags it sees)
    fork(), vfork() (x86_64; aarch64 has only clone): EPERM
    setsid(), setpgid(): EPERM (the process stays in the group and the
        session the loader kills)
    execve(), execveat(): EPERM (the job runs no program)
    unshare(): EPERM (no new namespaces, user namespaces included)
    a system call of another architecture, or x86_64's x32 calls: EPERM
    everything else: allowed

Any failure raises SandboxError; the harness then refuses to run the
job (or, with the sandbox off by the site's configuration, never calls
this module).
"""

import ctypes
import errno
import os
import platform
import struct

# Landlock (include/uapi/linux/landlock.h).
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # the same on every architecture
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

# The rights a rule on a file (not a folder) may carry.
_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV

# The policy's access words (sandbox.go's), as Landlock rights.
ACCESS = {
    "rx": FS_EXECUTE | FS_READ_FILE | FS_READ_DIR,
    "r": FS_READ_FILE | FS_READ_DIR,
    "rw": FS_READ_FILE | FS_WRITE_FILE | FS_TRUNCATE,
    # No execute, no device or socket files (mknod as root would reach
    # the disks), no fifo.
    "rwc": FS_READ_FILE | FS_WRITE_FILE | FS_TRUNCATE | FS_READ_DIR | FS_REMOVE_DIR | FS_REMOVE_FILE
    | FS_MAKE_DIR | FS_MAKE_REG | FS_MAKE_SYM | FS_REFER,
    # Read and write the files that are there (the host's shared memory
    # files), list the folder; nothing made, removed or truncated.
    "rwe": FS_READ_FILE | FS_WRITE_FILE | FS_READ_DIR,
}

# prctl and capabilities.
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_CAP_VERSION_3 = 0x20080522

# seccomp.
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_TSYNC = 1
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_X32_BIT = 0x40000000
_AF_UNIX = 1
_SOCK_STREAM, _SOCK_SEQPACKET, _SOCK_TYPE_MASK = 1, 5, 0xF

# Per architecture: the audit arch, and the numbers of the calls the
# filter looks at.
_ARCH = {
    "x86_64": dict(audit=0xC000003E, seccomp=317, socket=41, socketpair=53, connect=42, ptrace=101,
                   process_vm_readv=310, process_vm_writev=311, io_uring_setup=425,
                   clone=56, clone3=435, fork=57, vfork=58, setsid=112, setpgid=109, execve=59, execveat=322,
                   unshare=272, x32=True),
    "aarch64": dict(audit=0xC00000B7, seccomp=277, socket=198, socketpair=199, connect=203, ptrace=117,
                    process_vm_readv=270, process_vm_writev=271, io_uring_setup=425,
                    clone=220, clone3=435, fork=None, vfork=None, setsid=157, setpgid=154, execve=221, execveat=281,
                    unshare=97, x32=False),
}
_CLONE_THREAD = 0x00010000


class SandboxError(Exception):
    """The sandbox could not be applied; the job must not run."""


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int


def _syscall(nr, *args):
    """A raw system call; returns its result or raises OSError."""
    r = _libc.syscall(ctypes.c_long(nr), *args)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def _prctl(op, a=0, b=0, c=0, d=0):
    if _libc.prctl(ctypes.c_int(op), ctypes.c_ulong(a), ctypes.c_ulong(b), ctypes.c_ulong(c), ctypes.c_ulong(d)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttr(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


def abi():
    """The kernel's Landlock ABI version; SandboxError when it has none."""
    try:
        return _syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except OSError as e:
        if e.errno in (errno.ENOSYS, errno.EOPNOTSUPP):
            raise SandboxError("Landlock is not available (%s): the kernel lacks it or it is not enabled (lsm=landlock)"
                               % errno.errorcode.get(e.errno, e.errno)) from None
        raise SandboxError("Landlock: %s" % e) from None


def handled_fs(version):
    """Every filesystem right of a Landlock ABI."""
    rights = (1 << 13) - 1
    if version >= 2:
        rights |= FS_REFER
    if version >= 3:
        rights |= FS_TRUNCATE
    if version >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def _ruleset(version, fs, net, scoped):
    attr = _RulesetAttr(fs, net, scoped)
    size = 8 if version < 4 else 16 if version < 6 else 24
    try:
        return _syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    except OSError as e:
        raise SandboxError("Landlock: creating a ruleset: %s" % e) from None


def _restrict(fd):
    try:
        _syscall(_SYS_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0))
    except OSError as e:
        raise SandboxError("Landlock: restricting the process: %s" % e) from None
    finally:
        os.close(fd)


def _add_path(fd, path, rights, optional):
    try:
        pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        if optional:
            return
        raise SandboxError("Landlock: %s does not exist" % path) from None
    except OSError as e:
        raise SandboxError("Landlock: %s: %s" % (path, e)) from None
    try:
        import stat

        if not stat.S_ISDIR(os.fstat(pfd).st_mode):
            rights &= _FILE_RIGHTS
        attr = _PathBeneathAttr(rights, pfd)
        _syscall(_SYS_ADD_RULE, ctypes.c_int(fd), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(attr), ctypes.c_uint32(0))
    except OSError as e:
        raise SandboxError("Landlock: a rule for %s: %s" % (path, e)) from None
    finally:
        os.close(pfd)


def _threads():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return -1


def _drop_capabilities():
    # The bounding set first (that needs CAP_SETPCAP), then the thread's
    # effective, permitted and inheritable sets (ambient ones go with the
    # permitted).
    for cap in range(64):
        try:
            _prctl(_PR_CAPBSET_DROP, cap)
        except OSError as e:
            if e.errno == errno.EINVAL:  # past the kernel's last capability
                break
            if e.errno != errno.EPERM:  # EPERM: the process never had CAP_SETPCAP, so holds nothing to drop
                raise SandboxError("dropping capability %d: %s" % (cap, e)) from None
    header = struct.pack("=Ii", _CAP_VERSION_3, 0)
    data = bytes(24)
    if _libc.capset(ctypes.c_char_p(header), ctypes.c_char_p(data)) != 0:
        e = ctypes.get_errno()
        raise SandboxError("capset: %s" % os.strerror(e))


def begin(policy, launcher):
    """The first step (see the module doc): policy is sandbox.go's rules,
    a list of {"path", "access", "optional"}; launcher is this launcher's
    own file, which Python reads lazily. Returns a description of what
    holds, for the log."""
    arch = platform.machine()
    if arch not in _ARCH:
        raise SandboxError("no seccomp filter for the %s architecture" % arch)
    n = _threads()
    if n != 1:
        raise SandboxError("the process has %d threads, not one: threads started before the sandbox would stay outside it" % n)
    version = abi()
    fs = handled_fs(version)
    net = NET_CONNECT_TCP if version >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if version >= 6 else 0
    try:
        _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    except OSError as e:
        raise SandboxError("no_new_privs: %s" % e) from None
    _drop_capabilities()
    fd = _ruleset(version, fs, net, scoped)
    try:
        for rule in policy:
            if rule["access"] not in ACCESS:
                raise SandboxError("an unknown access %r for %s" % (rule["access"], rule["path"]))
            _add_path(fd, rule["path"], ACCESS[rule["access"]] & fs, rule.get("optional", False))
        _add_path(fd, launcher, FS_READ_FILE, False)
    except BaseException:
        os.close(fd)
        raise
    _restrict(fd)
    return "Landlock ABI %d: files limited to %d rules, TCP connect %s, signals and abstract sockets %s; no capabilities" % (
        version, len(policy) + 1, "forbidden" if net else "not covered (ABI < 4)", "scoped" if scoped else "not scoped (ABI < 6)")


def finish():
    """The second step (see the module doc), once the listener is bound."""
    version = abi()
    if version >= 4:
        # Handling TCP bind with no rule for any port: no bind at all.
        _restrict(_ruleset(version, 0, NET_BIND_TCP, 0))
    _seccomp()


def _bpf(code, jt, jf, k):
    return struct.pack("=HBBI", code, jt, jf, k)


def filter_program(arch):
    """The seccomp filter of the module doc, as classic BPF instructions."""
    a = _ARCH[arch]
    LD, JEQ, JGE, JSET, AND, RET = 0x20, 0x15, 0x35, 0x45, 0x54, 0x06
    deny, allow, nosys = _RET_ERRNO | errno.EPERM, _RET_ALLOW, _RET_ERRNO | errno.ENOSYS
    # The program, with symbolic jump targets resolved below.
    prog = [
        ("ld", LD, 4),  # seccomp_data.arch
        ("jne", a["audit"], "deny"),
        ("ld", LD, 0),  # seccomp_data.nr
    ]
    if a["x32"]:
        prog.append(("jge", _X32_BIT, "deny"))
    prog += [
        ("jeq", a["socket"], "sock"),
        ("jeq", a["socketpair"], "sock"),
        ("jeq", a["connect"], "deny"),
        ("jeq", a["io_uring_setup"], "deny"),
        ("jeq", a["ptrace"], "deny"),
        ("jeq", a["process_vm_readv"], "deny"),
        ("jeq", a["process_vm_writev"], "deny"),
        ("jeq", a["clone"], "clone"),
        ("jeq", a["clone3"], "nosys"),
    ]
    for name in ("fork", "vfork", "setsid", "setpgid", "execve", "execveat", "unshare"):
        if a[name] is not None:
            prog.append(("jeq", a[name], "deny"))
    prog += [
        ("ret", allow),
        ("label", "clone"),
        ("ld", LD, 16),  # the low half of args[0]: the flags
        ("jset", _CLONE_THREAD, "allow"),
        ("ret", deny),
        ("label", "nosys"),
        ("ret", nosys),
        ("label", "sock"),
        ("ld", LD, 16),  # the low half of args[0]: the domain
        ("jne", _AF_UNIX, "deny"),
        ("ld", LD, 24),  # the low half of args[1]: the type and its flags
        ("and", _SOCK_TYPE_MASK),
        ("jeq", _SOCK_STREAM, "allow"),
        ("jeq", _SOCK_SEQPACKET, "allow"),
        ("label", "deny"),
        ("ret", deny),
        ("label", "allow"),
        ("ret", allow),
    ]
    labels, pc = {}, 0
    for ins in prog:
        if ins[0] == "label":
            labels[ins[1]] = pc
        else:
            pc += 1
    out, pc = [], 0
    for ins in prog:
        op = ins[0]
        if op == "label":
            continue
        if op == "ld":
            out.append(_bpf(ins[1], 0, 0, ins[2]))
        elif op == "and":
            out.append(_bpf(AND, 0, 0, ins[1]))
        elif op == "ret":
            out.append(_bpf(RET, 0, 0, ins[1]))
        else:
            off = labels[ins[2]] - pc - 1
            if not 0 <= off < 256:
                raise SandboxError("a seccomp jump of %d" % off)
            if op == "jeq":
                out.append(_bpf(JEQ, off, 0, ins[1]))
            elif op == "jne":
                out.append(_bpf(JEQ, 0, off, ins[1]))
            elif op == "jset":
                out.append(_bpf(JSET, off, 0, ins[1]))
            else:
                out.append(_bpf(JGE, off, 0, ins[1]))
        pc += 1
    return out


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _seccomp():
    arch = platform.machine()
    prog = filter_program(arch)
    buf = ctypes.create_string_buffer(b"".join(prog))
    fprog = _SockFprog(len(prog), ctypes.cast(buf, ctypes.c_void_p))
    try:
        r = _syscall(_ARCH[arch]["seccomp"], ctypes.c_uint(_SECCOMP_SET_MODE_FILTER), ctypes.c_uint(_SECCOMP_FILTER_FLAG_TSYNC), ctypes.byref(fprog))
    except OSError as e:
        raise SandboxError("seccomp: %s" % e) from None
    if r != 0:
        raise SandboxError("seccomp: thread %d could not take the filter" % r)
