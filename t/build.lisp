;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; build.lisp --- the C library component of cl-async.asd.

(in-package #:cl-async-ssl-test)

(def-suite build :in cl-async-core
  :description "Building the C library from ASDF.")
(in-suite build)

(defun build-headers-message (present-p)
  "The message of the error CHECK-BUILD-HEADERS (cl-async.asd) signals
when PRESENT-P is false for some headers, or nil if it signals none."
  (handler-case
      (progn (uiop:symbol-call '#:cl-async-system '#:check-build-headers present-p)
             nil)
    (error (e) (princ-to-string e))))

(test missing-headers-give-a-clear-message
  "Without the libuv or OpenSSL headers, loading cl-async fails with a
message naming each missing header and the Debian packages to install."
  (let ((both (build-headers-message (constantly nil)))
        (uv (build-headers-message (lambda (h) (string/= h "uv.h")))))
    (is (search "the headers uv.h, openssl/ssl.h are missing" both) "got ~s" both)
    (is (search "apt-get install libuv1-dev libssl-dev" both) "got ~s" both)
    (is (search "the header uv.h is missing" uv) "got ~s" uv)
    (is (search "apt-get install libuv1-dev" uv) "got ~s" uv)
    (is (not (search "libssl-dev" uv)) "got ~s" uv)
    (is (null (build-headers-message (constantly t))))))
