;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; cl-async.asd --- asynchronous TCP for Common Lisp: the cl-async core.
;;;;
;;;; The system cl-async holds the C library (c/libcl-async-ssl.so, built
;;;; with make when it is missing or older than its sources), its bindings
;;;; (package cl-async-ffi, TLS ones included) and the packages
;;;; cl-async-base, cl-async-util, cl-async-ext and cl-async (as): the event
;;;; loop, timers, notifiers, DNS, TCP and async streams.  TLS is the
;;;; system cl-async-ssl (cl-async-ssl.asd), loaded on top of this one; the
;;;; same C library serves both.
;;;;
;;;; As upstream's cl-async.asd does, this file also defines the systems
;;;; cl-async-base and cl-async-util, for libraries that depend on them by
;;;; name, and the test system cl-async/test.

(defpackage #:cl-async-system
  (:use #:cl #:asdf))

(in-package #:cl-async-system)

;;;# The C library, an ASDF component

(defclass c-library (component)
  ()
  (:documentation "The C library of cl-async and cl-async-ssl
(c/libcl-async-ssl.so), built by make in its directory."))

(defun c-directory (component)
  (component-pathname (component-parent component)))

(defun c-library-file (component)
  (merge-pathnames "libcl-async-ssl.so" (c-directory component)))

(defmethod component-pathname ((c c-library))
  (c-library-file c))

(defmethod input-files ((o compile-op) (c c-library))
  (let ((dir (c-directory c)))
    (append (directory (merge-pathnames "*.c" dir))
            (directory (merge-pathnames "*.h" dir))
            (list (merge-pathnames "Makefile" dir)))))

(defmethod output-files ((o compile-op) (c c-library))
  (values (list (c-library-file c)) t))

(defmethod input-files ((o load-op) (c c-library))
  (list (c-library-file c)))

(defmethod output-files ((o load-op) (c c-library))
  (values nil t))

(defun header-present-p (name)
  (or (probe-file (format nil "/usr/include/~a" name))
      (probe-file (format nil "/usr/local/include/~a" name))
      (probe-file (format nil "/usr/include/x86_64-linux-gnu/~a" name))))

(defparameter *build-headers* '(("uv.h" "libuv1-dev")
                                ("openssl/ssl.h" "libssl-dev"))
  "The headers the C library is built with, each with the Debian package
that installs it.")

(defun check-build-headers (&optional (present-p #'header-present-p))
  "Signals an error naming the missing headers of *BUILD-HEADERS* (those
PRESENT-P is false for) and the packages to install, if any is missing."
  (let ((missing (loop :for (header package) :in *build-headers*
                       :unless (funcall present-p header)
                         :collect (cons header package))))
    (when missing
      (error "cl-async cannot build its C library: the header~p ~{~a~^, ~} ~
              ~:[is~;are~] missing.~%Install the Debian package~p: ~
              apt-get install ~{~a~^ ~}"
             (length missing) (mapcar #'car missing) (rest missing)
             (length missing) (mapcar #'cdr missing)))))

(defmethod perform ((o compile-op) (c c-library))
  (check-build-headers)
  (let ((dir (namestring (c-directory c))))
    (multiple-value-bind (out err code)
        (uiop:run-program (list "make" "-C" dir "libcl-async-ssl.so")
                          :output :string :error-output :string
                          :ignore-error-status t)
      (unless (zerop code)
        (error "cl-async: building the C library failed (make -C ~a, ~
                exit ~a):~%~a~%~a" dir code out err)))))

(defmethod perform ((o load-op) (c c-library))
  nil)

;;;# Systems

(defsystem "cl-async"
  :description "Asynchronous TCP for Common Lisp: the cl-async API (event
loop, timers, notifiers, DNS, TCP sockets and servers, pipes, child
processes, async streams) on a
C shim over libuv.  TLS is the system cl-async-ssl."
  :version "0.1.0"
  :license "MIT"
  :depends-on ("cffi" "babel" "bordeaux-threads" "trivial-gray-streams")
  :components ((:module "c"
                :components ((:c-library "libcl-async-ssl")))
               (:module "lisp"
                :depends-on ("c")
                :serial t
                :components ((:module "ffi"
                              :serial t
                              :components ((:file "package")
                                           (:file "library")
                                           (:file "callbacks")
                                           (:file "loop")
                                           (:file "tcp")
                                           (:file "process")
                                           (:file "fs")
                                           (:file "tls")))
                             (:file "package")
                             (:file "base")
                             (:file "util")
                             (:file "ffi/upstream-util")
                             (:file "conditions")
                             (:file "arguments")
                             (:file "event-loop")
                             (:file "event")
                             (:file "notify")
                             (:file "dns")
                             (:file "filesystem")
                             (:file "signal")
                             (:file "idle")
                             (:file "poll")
                             (:file "fsevent")
                             (:file "socket")
                             (:file "async-stream")
                             (:file "tcp")
                             (:file "pipe")
                             (:file "process"))))
  :in-order-to ((test-op (test-op "cl-async/test"))))

;;; Upstream's cl-async.asd defines these two beside cl-async (each holds
;;; one of its packages); here the packages are part of cl-async, so each
;;; is cl-async under the name a library may depend on.  They are found
;;; once this file is loaded (by a dependency on cl-async listed first, or
;;; by Quicklisp's index).  No source file is recorded for them: ASDF 3.3
;;; would warn that this file is not named after them, and plan a reload
;;; of it under their names.

(defsystem "cl-async-base"
  :description "Upstream's cl-async-base (the event-base, the base
conditions and the specials): here part of cl-async, which this loads."
  :version "0.1.0"
  :license "MIT"
  :source-file nil
  :depends-on ("cl-async"))

(defsystem "cl-async-util"
  :description "Upstream's cl-async-util (octets, addresses, the error
handling of callbacks): here part of cl-async, which this loads."
  :version "0.1.0"
  :license "MIT"
  :source-file nil
  :depends-on ("cl-async"))

(defsystem "cl-async/test"
  :description "FiveAM suites of the cl-async core (no TLS); cl-async-ssl/test
adds the TLS ones."
  :depends-on ("cl-async" "fiveam" "bordeaux-threads" "babel" "cffi")
  :components ((:module "t"
                :serial t
                :components ((:file "package")
                             (:file "util")
                             (:file "core")
                             (:file "timers")
                             (:file "tcp")
                             (:file "streams")
                             (:file "pipe")
                             (:file "process")
                             (:file "signal")
                             (:file "poll")
                             (:file "filesystem")
                             (:file "dns")
                             (:file "upstream-util")
                             (:file "build"))))
  :perform (test-op (o c)
             (uiop:symbol-call '#:cl-async-ssl-test '#:run-core-tests)))
