;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; library.lisp --- loading libcl-async-ssl.so, the DEFC wrapper that
;;;; defers interrupts around every C call, error codes, versions, libc.

(in-package #:cl-async-ffi)

;;;# Library

(cffi:define-foreign-library libcl-async-ssl
  (t (:default "libcl-async-ssl")))

(defun library-pathname ()
  "The C library to load: $CL_ASYNC_SSL_LIBRARY if set (another build, such
as the sanitizer build `make asan' uses), else the one the ASDF system
cl-async builds, c/libcl-async-ssl.so (cl-async-ssl uses the same one)."
  (let ((override (uiop:getenv "CL_ASYNC_SSL_LIBRARY")))
    (if (and override (plusp (length override)))
        (pathname override)
        (asdf:system-relative-pathname :cl-async "c/libcl-async-ssl.so"))))

(defun ensure-library ()
  "Loads libcl-async-ssl.so (built by the ASDF system cl-async) unless it
is loaded."
  (unless (cffi:foreign-library-loaded-p 'libcl-async-ssl)
    (let ((path (library-pathname)))
      (unless (probe-file path)
        (error "cl-async: the C library ~a is missing.  Load the ~
                system with (asdf:load-system :cl-async), which builds ~
                it, or run `make -C ~a`."
               (namestring path)
               (namestring (make-pathname :name nil :type nil
                                          :defaults path))))
      (cffi:load-foreign-library path))))

(ensure-library)

;;; Input strings: NIL is passed as NULL.
(cffi:define-foreign-type nullable-string-type ()
  ()
  (:actual-type :pointer)
  (:simple-parser nullable-string))

(defmethod cffi:translate-to-foreign (value (type nullable-string-type))
  (if value
      (cffi:foreign-string-alloc value :encoding :utf-8)
      (cffi:null-pointer)))

(defmethod cffi:free-translated-object (pointer (type nullable-string-type)
                                        param)
  (declare (ignore param))
  (unless (cffi:null-pointer-p pointer)
    (cffi:foreign-string-free pointer)))

;;; Asynchronous interrupts (^C, SIGTERM, INTERRUPT-THREAD, WITH-TIMEOUT)
;;; must never run inside C code: a handler that unwinds would leave a lock
;;; of malloc or OpenSSL held, or libuv half way through its poll.  So every
;;; call into the library defers them (they run as soon as the call
;;; returns), and the loop is driven one bounded iteration at a time (see
;;; LOOP-RUN-ONCE) so a pending interrupt waits at most RUN-ONCE's bound.
;;; Callbacks re-enable interrupts: a runaway callback can be interrupted,
;;; and unwinding from it is safe (only casl_loop_run_once's own frame, whose
;;; state casl_loop_free resets, is below it).

(defmacro defc (lisp-name c-name return-type &body args)
  "Declares the C function C-NAME as LISP-NAME, called with deferrable
interrupts deferred."
  (let ((raw (intern (format nil "%%RAW-~a" (symbol-name lisp-name))))
        (names (mapcar #'first args)))
    `(progn
       (cffi:defcfun (,c-name ,raw) ,return-type ,@args)
       (declaim (inline ,lisp-name))
       (defun ,lisp-name ,names
         ,(format nil "Calls ~a." c-name)
         (sb-sys:without-interrupts (,raw ,@names))))))

;;;# Errors and versions

(defconstant +eof+ -4095 "libuv's UV_EOF.")
(defconstant +uv-einval+ -22 "libuv's UV_EINVAL (-EINVAL on Linux).")
(defconstant +etls+ -30001 "CASL_ETLS: TLS protocol failure or alert.")
(defconstant +everify+ -30002 "CASL_EVERIFY: certificate verification failed.")
(defconstant +etruncated+ -30003 "CASL_ETRUNCATED: EOF without close_notify.")
(defconstant +econfig+ -30004 "CASL_ECONFIG: a TLS setting was rejected.")
(defconstant +enomem+ -30005 "CASL_ENOMEM.")
(defconstant +einval+ -30006 "CASL_EINVAL.")
(defconstant +eclosed+ -30007 "CASL_ECLOSED: the object is closed.")
(defconstant +estate+ -30008 "CASL_ESTATE: not allowed in this state.")
(defconstant +etlseof+ -30009
  "CASL_ETLSEOF: the transport ended during the TLS handshake.")

(defc strerror "casl_strerror" :string (code :int))
(defc err-name "casl_err_name" :string (code :int))
(defc library-version "casl_version" :string)
(defc libuv-version "casl_libuv_version" :string)
(defc openssl-version "casl_openssl_version" :string)

(defun null-pointer-p (pointer)
  "True if POINTER is a null foreign pointer."
  (cffi:null-pointer-p pointer))

(defun null-pointer ()
  "A null foreign pointer."
  (cffi:null-pointer))

(defun pointer-address (pointer)
  "The address of POINTER as an integer."
  (cffi:pointer-address pointer))

(cffi:defcfun ("memcpy" %memcpy) :pointer
  (dst :pointer) (src :pointer) (n :size))

;;;# Out parameters

(defmacro with-out-pointer ((var) call)
  "Calls CALL with VAR bound to a pointer slot; returns the pointer stored
there and 0, or nil and the code."
  `(cffi:with-foreign-object (,var :pointer)
     (let ((rc ,call))
       (if (zerop rc)
           (values (cffi:mem-ref ,var :pointer) 0)
           (values nil rc)))))
