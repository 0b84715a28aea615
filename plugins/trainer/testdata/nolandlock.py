#!/usr/bin/python3 -I
# A test interpreter (plugins/trainer's sandbox tests): Debian's python3
# on what looks like a kernel without Landlock. A seccomp filter answers
# landlock_create_ruleset (444 on every architecture) with ENOSYS, then
# the real interpreter runs the launcher with the arguments it was given.
import ctypes
import os
import struct
import sys

ENOSYS = 38
prog = b"".join(struct.pack("=HBBI", *i) for i in [
    (0x20, 0, 0, 0),  # load the call's number
    (0x15, 0, 1, 444),  # landlock_create_ruleset?
    (0x06, 0, 0, 0x00050000 | ENOSYS),  # then ENOSYS
    (0x06, 0, 0, 0x7FFF0000),  # else allow
])


class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(prog)
fprog = Fprog(4, ctypes.cast(buf, ctypes.c_void_p))
if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # no_new_privs, seccomp filter
    sys.exit("nolandlock: %s" % os.strerror(ctypes.get_errno()))
os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv[1:])
