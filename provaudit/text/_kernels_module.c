/* The Python extension module provaudit.text._kernels, built by `pip install .` (setup.py).
 *
 * It wraps the plain C kernels of _kernels.c (one translation unit: the kernels are
 * compiled exactly as before) and exposes nothing but ABI (a version number) and ADDRESSES, a dict of kernel name ->
 * function address, that provaudit/text/kernels.py binds with ctypes prototypes. The
 * kernels take and return plain arrays and never touch Python objects, so the module
 * uses the stable ABI only (one abi3 wheel per platform serves every Python >= 3.11).
 */
#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030B0000
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_kernels.c"

/* Raised whenever a kernel's signature changes, with ABI in kernels.py: a stale build is never called. */
#define PA_KERNELS_ABI 2

#define ENTRY(name) {#name, (void *)&name}
static const struct { const char *name; void *fn; } KERNELS[] = {
    ENTRY(pa_xxh3_64), ENTRY(pa_hash_words), ENTRY(pa_hash_chars), ENTRY(pa_combine), ENTRY(pa_minhash),
    ENTRY(pa_unique_sorted), ENTRY(pa_probe), ENTRY(pa_probe_hits), ENTRY(pa_sort_pairs), ENTRY(pa_band_keys),
    ENTRY(pa_directory), ENTRY(pa_long_runs), ENTRY(pa_overlap), ENTRY(pa_covered_tokens),
    ENTRY(pa_longest_common_run), ENTRY(pa_anchor_counts),
};

static int add_addresses(PyObject *module) {
    PyObject *table = PyDict_New();
    if (table == NULL) return -1;
    for (size_t i = 0; i < sizeof(KERNELS) / sizeof(KERNELS[0]); i++) {
        PyObject *address = PyLong_FromVoidPtr(KERNELS[i].fn);
        if (address == NULL || PyDict_SetItemString(table, KERNELS[i].name, address) < 0) {
            Py_XDECREF(address);
            Py_DECREF(table);
            return -1;
        }
        Py_DECREF(address);
    }
    if (PyModule_AddIntConstant(module, "ABI", PA_KERNELS_ABI) < 0) {
        Py_DECREF(table);
        return -1;
    }
    int rc = PyModule_AddObjectRef(module, "ADDRESSES", table);
    Py_DECREF(table);
    return rc;
}

static PyModuleDef_Slot SLOTS[] = {{Py_mod_exec, (void *)add_addresses}, {0, NULL}};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "provaudit.text._kernels",
    "Compiled provaudit kernels: ADDRESSES maps each kernel to its function address (see kernels.py).",
    0, NULL, SLOTS, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModuleDef_Init(&MODULE); }
