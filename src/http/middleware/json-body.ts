import express, { type RequestHandler } from 'express';
import { UnsupportedMediaTypeError } from '../../errors';

const JSON_TYPES = ['application/json', 'application/*+json'];

/**
 * JSON request bodies: a body with another media type is 415; no body (or an empty one) needs
 * no Content-Type. Size, parse and charset errors are typed by the error handler.
 */
export function jsonBody(limitBytes: number): RequestHandler[] {
  const requireJson: RequestHandler = (req, _res, next) => {
    const length = req.headers['content-length'];
    const hasBody = req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
    if (hasBody && !req.is(JSON_TYPES)) {
      throw new UnsupportedMediaTypeError('request bodies must be JSON (Content-Type: application/json)');
    }
    next();
  };
  return [requireJson, express.json({ limit: limitBytes, type: JSON_TYPES, strict: true })];
}
