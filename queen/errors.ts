/**
 * The queen's domain errors. They say what went wrong and carry no HTTP status: the HTTP edge
 * maps them to statuses in one place (`http/on_error.ts`), the dashboard and the browser socket
 * show their messages.
 * @module
 */
import { describeIssues } from "../protocol/mod.ts";

/** One problem of an input, as `{path, message}`. */
export interface Issue {
  path: string;
  message: string;
}

/** The input is malformed: not JSON, too deep, or not what its schema describes. */
export class InvalidInputError extends Error {
  constructor(message: string, readonly issues: readonly Issue[] = []) {
    super(message);
    this.name = "InvalidInputError";
  }

  /** `what: path: message; path: message`, the one wording of schema problems. */
  static of(what: string, issues: readonly Issue[]): InvalidInputError {
    return new InvalidInputError(`${what}: ${describeIssues(issues)}`, issues);
  }
}

/** The input is valid but this queen's policy refuses it (e.g. `--allow-repo`). */
export class RejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RejectedError";
  }
}

/** The thing asked for does not exist. */
export class NotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NotFoundError";
  }
}

/** The request clashes with the current state (an id taken, a job not finished). */
export class ConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConflictError";
  }
}

/** The request carries no credential that allows it. */
export class UnauthorizedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnauthorizedError";
  }
}

/** The request is authenticated but may not do this. */
export class ForbiddenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ForbiddenError";
  }
}

/** A problem with the queen's settings or files found while starting: the message says the fix. */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StartupError";
  }
}

/**
 * The database did not answer in time or could not be reached (`--database`): the request may be
 * tried again once it is back.
 */
export class DatabaseUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DatabaseUnavailableError";
  }
}
