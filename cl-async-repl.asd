;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; cl-async-repl.asd --- REPL integration for cl-async: an event loop in a
;;;; background thread evaluates what is typed at the REPL.
;;;;
;;;; The system cl-async-repl holds the package cl-async-repl (as-repl), in
;;;; lisp/repl/; it depends on cl-async only (load cl-async-ssl too to type
;;;; TLS code at the prompt).  It works in SBCL's terminal REPL and, when
;;;; SWANK is loaded, in SLIME's.  Its tests are cl-async-repl/test.

(defsystem "cl-async-repl"
  :description "REPL integration for cl-async: forms typed at the REPL
(SBCL's terminal REPL or SLIME's) are evaluated in an event loop running in
a background thread."
  :version "0.1.0"
  :license "MIT"
  :depends-on ("cl-async" "bordeaux-threads")
  :components ((:module "lisp"
                :components ((:module "repl"
                              :serial t
                              :components ((:file "package")
                                           (:file "state")
                                           (:file "eval")
                                           (:file "hooks")
                                           (:file "event-thread")
                                           (:file "repl"))))))
  :in-order-to ((test-op (test-op "cl-async-repl/test"))))

(defsystem "cl-async-repl/test"
  :description "FiveAM suite of cl-async-repl (suite REPL, in the root suite
of cl-async-ssl/test), with a terminal SBCL REPL driven in a subprocess."
  :depends-on ("cl-async-repl" "cl-async-ssl" "cl-async-ssl/test" "fiveam"
               "bordeaux-threads")
  :components ((:module "t"
                :components ((:file "repl"))))
  :perform (test-op (o c)
             (uiop:symbol-call '#:cl-async-ssl-test '#:run-repl-tests)))
