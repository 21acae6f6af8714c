;;;; run-lisp-tests.lisp --- loads cl-async-ssl/test (which loads
;;;; cl-async/test, cl-async and cl-async-ssl) and cl-async-repl/test, and
;;;; runs every FiveAM suite, the core's, the TLS ones and the REPL's; the
;;;; last line is "lisp: N passed, M failed".  Exit status 0 when
;;;; nothing failed.  Run from the repository root (make test does).
(require :asdf)
(push (uiop:getcwd) asdf:*central-registry*)
(handler-case (progn (asdf:load-system :cl-async-ssl/test)
                     (asdf:load-system :cl-async-repl/test))
  (error (e)
    (format t "~&error loading the test system: ~a~%lisp: 0 passed, 1 failed~%" e)
    (uiop:quit 1)))
(multiple-value-bind (passed failed)
    (uiop:symbol-call '#:cl-async-ssl-test '#:run-suites)
  (declare (ignore passed))
  (uiop:quit (if (zerop failed) 0 1)))
