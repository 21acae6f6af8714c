;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; package.lisp --- the test package, shared by cl-async/test and
;;;; cl-async-ssl/test.

(eval-when (:compile-toplevel :load-toplevel :execute)
  (require :sb-bsd-sockets))

(defpackage #:cl-async-ssl-test
  (:use #:cl #:fiveam)
  (:shadow #:run-all-tests)
  (:export #:run-all-tests #:run-core-tests #:run-suites))
