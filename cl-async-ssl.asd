;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; cl-async-ssl.asd --- TLS sockets and servers for cl-async.
;;;;
;;;; The system cl-async-ssl holds only the package cl-async-ssl (as-ssl),
;;;; in lisp/ssl/; it depends on cl-async (cl-async.asd), whose C library
;;;; and bindings carry the TLS engine too.  As upstream has it, TLS is
;;;; available only once this system is loaded.

(defsystem "cl-async-ssl"
  :description "Asynchronous TLS sockets for Common Lisp: the cl-async-ssl
API (tcp-ssl-connect, tcp-ssl-server, contexts, STARTTLS) on cl-async and
its C shim over OpenSSL, secure by default."
  :version "0.1.0"
  :license "MIT"
  :depends-on ("cl-async" "babel" "bordeaux-threads")
  :components ((:module "lisp"
                :components ((:module "ssl"
                              :serial t
                              :components ((:file "package")
                                           (:file "conditions")
                                           (:file "specials")
                                           (:file "config")
                                           (:file "context")
                                           (:file "socket")
                                           (:file "client")
                                           (:file "server")
                                           (:file "start-tls"))))))
  :in-order-to ((test-op (test-op "cl-async-ssl/test"))))

(defsystem "cl-async-ssl/test"
  :description "Every FiveAM suite: the core's (cl-async/test) and the TLS
ones."
  :depends-on ("cl-async-ssl" "cl-async/test" "fiveam" "bordeaux-threads")
  :components ((:module "t"
                :serial t
                :components ((:file "ssl-util")
                             (:file "ssl")
                             (:file "ssl-extra")
                             (:file "ssl-production")
                             (:file "pipe-tls")
                             (:file "interrupts")
                             (:file "signal-tls")
                             (:file "faults")
                             (:file "systems"))))
  :perform (test-op (o c)
             ;; The REPL's suite too (cl-async-repl/test depends on this
             ;; system, so it is loaded here rather than depended on).
             (asdf:load-system "cl-async-repl/test")
             (uiop:symbol-call '#:cl-async-ssl-test '#:run-all-tests)))
