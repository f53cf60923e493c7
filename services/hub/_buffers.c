/* liaison.hub._buffers: a bytes object the socket reads a message body straight into.
 *
 * The hub's transport (services/hub/transport.py, FrameStream) knows a body's size from its
 * content header before the body frames arrive. It asks for a bytes object of that size and a
 * writable view of its storage, receives the body frames' payloads into the view, and hands the
 * bytes on once they are all there: the body the consumer gets is that object, with no copy
 * on the hub's side (before, each large body was received into a buffer and then copied into
 * the bytes the consumer took: bench/README.md, "The hub per KB, fourth pass").
 *
 * Filling a bytes object after PyBytes_FromStringAndSize(NULL, n) is how CPython's own code
 * builds bytes; what makes it safe here is that nobody else sees the object until it is full:
 * the view is the transport's alone, dropped as soon as the last payload byte is in, and the
 * bytes' hash is not computed before (it is cached lazily). The view holds no reference to the
 * bytes (PyMemoryView_FromMemory): the transport keeps the bytes while it keeps the view.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *fresh(PyObject *module, PyObject *arg) {
    (void)module;
    Py_ssize_t size = PyLong_AsSsize_t(arg);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "a size of 0 or more");
        return NULL;
    }
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, size);
    if (bytes == NULL) {
        return NULL;
    }
    PyObject *view = PyMemoryView_FromMemory(PyBytes_AS_STRING(bytes), size, PyBUF_WRITE);
    if (view == NULL) {
        Py_DECREF(bytes);
        return NULL;
    }
    return Py_BuildValue("(NN)", bytes, view);
}

static PyMethodDef buffers_methods[] = {
    {"fresh", fresh, METH_O,
     "(bytes, view): a bytes object of the size given, its content unset, and a writable view "
     "of it. Fill the view, drop it, then hand the bytes on; keep the bytes while the view "
     "lives."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef buffers_module = {
    PyModuleDef_HEAD_INIT,
    "liaison.hub._buffers",
    "A bytes object the socket reads a message body straight into.",
    -1,
    buffers_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__buffers(void) { return PyModule_Create(&buffers_module); }
