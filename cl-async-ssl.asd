;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; cl-async-ssl.asd --- asynchronous TCP and TLS for Common Lisp.
;;;;
;;;; Loading the system builds the C library (c/libcl-async-ssl.so) with
;;;; make when it is missing or older than its sources.

(defpackage #:cl-async-ssl-system
  (:use #:cl #:asdf))

(in-package #:cl-async-ssl-system)

(defclass c-library (component)
  ()
  (:documentation "The C half of cl-async-ssl, built by make in its
directory."))

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

(defmethod perform ((o compile-op) (c c-library))
  (let ((missing (loop :for (header package) :in '(("uv.h" "libuv1-dev")
                                                   ("openssl/ssl.h" "libssl-dev"))
                       :unless (header-present-p header)
                         :collect (cons header package))))
    (when missing
      (error "cl-async-ssl cannot build its C library: the header~p ~{~a~^, ~} ~
              ~:*~[~;is~:;are~] missing.~%Install the Debian package~p: ~
              apt-get install ~{~a~^ ~}"
             (length missing) (mapcar #'car missing)
             (length missing) (mapcar #'cdr missing))))
  (let ((dir (namestring (c-directory c))))
    (multiple-value-bind (out err code)
        (uiop:run-program (list "make" "-C" dir "libcl-async-ssl.so")
                          :output :string :error-output :string
                          :ignore-error-status t)
      (unless (zerop code)
        (error "cl-async-ssl: building the C library failed (make -C ~a, ~
                exit ~a):~%~a~%~a" dir code out err)))))

(defmethod perform ((o load-op) (c c-library))
  nil)

(defsystem "cl-async-ssl"
  :description "Asynchronous TCP and TLS sockets for Common Lisp: the
cl-async API on a C shim over libuv and OpenSSL, secure by default."
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
                                           (:file "tls")))
                             (:file "package")
                             (:file "base")
                             (:file "util")
                             (:file "conditions")
                             (:file "event-loop")
                             (:file "event")
                             (:file "notify")
                             (:file "dns")
                             (:file "socket")
                             (:file "async-stream")
                             (:file "tcp")
                             (:file "misc")
                             (:module "ssl"
                              :serial t
                              :components ((:file "package")
                                           (:file "conditions")
                                           (:file "specials")
                                           (:file "context")
                                           (:file "socket")
                                           (:file "client")
                                           (:file "server")
                                           (:file "start-tls"))))))
  :in-order-to ((test-op (test-op "cl-async-ssl/test"))))

(defsystem "cl-async-ssl/test"
  :description "FiveAM suites of cl-async-ssl."
  :depends-on ("cl-async-ssl" "fiveam" "bordeaux-threads")
  :components ((:module "t"
                :serial t
                :components ((:file "package")
                             (:file "util")
                             (:file "core")
                             (:file "timers")
                             (:file "tcp")
                             (:file "streams")
                             (:file "ssl-util")
                             (:file "ssl")
                             (:file "ssl-extra")
                             (:file "interrupts"))))
  :perform (test-op (o c)
             (uiop:symbol-call '#:cl-async-ssl-test '#:run-all-tests)))
